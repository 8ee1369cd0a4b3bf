"""A corpus of bad inputs, built from real photos, each with the reason it must be refused with.

The bit-flipped file is a PNG: PNG carries CRCs and zlib checksums, so a flipped
bit is detectable. (A JPEG has no checksum; a flipped bit in its entropy data
decodes to wrong pixels, which only the sender's SHA-256 can catch — the
``checksum_mismatch`` case.)
"""

from __future__ import annotations

import io
import struct

from PIL import Image

from tests.photos import skimage_photo


def truncated_jpeg() -> bytes:
    data = skimage_photo("rocket.jpg")
    return data[: len(data) // 2]


def bit_flipped_png() -> bytes:
    data = bytearray(skimage_photo("coffee.png"))
    for offset in range(len(data) // 2, len(data) // 2 + 64, 8):
        data[offset] ^= 0x10
    return bytes(data)


def header_bomb_png() -> bytes:
    """A real PNG whose header declares 30000 × 30000 pixels (mode "1" keeps the file small)."""
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, "PNG")
    return buf.getvalue()


def many_frame_gif(frames: int = 10_000) -> bytes:
    """A valid 1×1 GIF of ``frames`` frames, written block by block."""
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame * frames + b"\x3b"


TEXT = b"hello, I am a text file renamed .jpg\n" * 10
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\nshowpage\n"
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


def bad_inputs() -> list[tuple[str, bytes, str]]:
    """(file name, bytes, expected reason)."""
    return [
        ("truncated.jpg", truncated_jpeg(), "corrupt"),
        ("flipped.png", bit_flipped_png(), "corrupt"),
        ("bomb.png", header_bomb_png(), "decompression_bomb"),
        ("frames.gif", many_frame_gif(), "too_many_frames"),
        ("empty.jpg", b"", "empty"),
        ("notes.jpg", TEXT, "not_an_image"),
        ("drawing.png", EPS, "unsupported_format"),
        ("vector.svg", SVG, "unsupported_format"),
    ]


def wrong_extension() -> tuple[str, bytes]:
    """A real PNG named .jpg: the type comes from the bytes, so it is a good image (stored as PNG)."""
    return "really-a-png.jpg", skimage_photo("page.png")
