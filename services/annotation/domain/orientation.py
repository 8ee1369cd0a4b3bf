"""Exported images lose their EXIF orientation, losslessly, so every reader sees the frame the annotations use.

Annotations are in the stored pixel frame (as COCO's are). An image whose EXIF ``Orientation`` asks for a
turn is read turned by OpenCV (and so by Ultralytics) and as stored by PIL and torchvision: the same
export would train one tool on boxes that miss their objects. Setting the tag to 1 ("as stored") makes
every reader agree with the annotations. It is one 2-byte value inside the EXIF block, written in place:
the pixels, every other tag and every offset stay as they are, nothing is decoded or re-encoded.

The EXIF block is a TIFF structure wherever it sits: in a JPEG's APP1 segments (every one is looked at),
a PNG's ``eXIf`` chunk (whose CRC is then recomputed), a WebP's ``EXIF`` chunk, or a TIFF file itself.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator

ORIENTATION_TAG = 0x0112
_SHORT = 3
_EXIF_HEADER = b"Exif\x00\x00"
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # JPEG markers without a length (TEM, RSTn)
_START_OF_SCAN, _END_OF_IMAGE, _APP1 = 0xDA, 0xD9, 0xE1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def without_orientation(data: bytes) -> bytes:
    """``data`` with every EXIF orientation that asks for a turn set to 1; ``data`` itself when none does.

    Anything that is not well-formed (a cut segment, an IFD pointing outside its block) is left as it is:
    this never fails an export.
    """
    patched: bytearray | None = None
    for tiff, end, on_change in _exif_blocks(data):
        offset = _orientation_offset(data, tiff, end)
        if offset is None:
            continue
        patched = patched if patched is not None else bytearray(data)
        patched[offset : offset + 2] = (1).to_bytes(2, "little" if data[tiff] == ord("I") else "big")
        if on_change is not None:
            on_change(patched)
    return bytes(patched) if patched is not None else data


# (where the TIFF structure starts, where its block ends, what else to fix after a change)
Block = tuple[int, int, Callable[[bytearray], None] | None]


def _exif_blocks(data: bytes) -> Iterator[Block]:
    if data.startswith(b"\xff\xd8"):
        yield from _jpeg_blocks(data)
    elif data.startswith(_PNG_SIGNATURE):
        yield from _png_blocks(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        yield from _webp_blocks(data)
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        yield 0, len(data), None


def _jpeg_blocks(data: bytes) -> Iterator[Block]:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (_START_OF_SCAN, _END_OF_IMAGE):
            return  # the headers are over
        (length,) = struct.unpack_from(">H", data, position + 2)
        start, end = position + 4, position + 2 + length
        if length < 2 or end > len(data):
            return
        if marker == _APP1 and data[start : start + 6] == _EXIF_HEADER:
            yield start + 6, end, None
        position = end


def _png_blocks(data: bytes) -> Iterator[Block]:
    position = len(_PNG_SIGNATURE)
    while position + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        start, end = position + 8, position + 8 + length
        if end + 4 > len(data):
            return
        if kind == b"eXIf":

            def fix_crc(patched: bytearray, at: int = position, stop: int = end) -> None:
                struct.pack_into(">I", patched, stop, zlib.crc32(patched[at + 4 : stop]))

            yield start, end, fix_crc
        if kind in (b"IDAT", b"IEND"):
            return
        position = end + 4


def _webp_blocks(data: bytes) -> Iterator[Block]:
    position = 12
    while position + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, position)
        start, end = position + 8, position + 8 + length
        if end > len(data):
            return
        if kind == b"EXIF":
            yield (start + 6 if data[start : start + 6] == _EXIF_HEADER else start), end, None
        position = end + (length & 1)  # chunks are padded to an even size


def _orientation_offset(data: bytes, tiff: int, end: int) -> int | None:
    """Where IFD0's Orientation value sits in ``data``, when it is a single SHORT other than 1."""
    order = {b"II": "<", b"MM": ">"}.get(data[tiff : tiff + 2])
    if order is None or tiff + 8 > end:
        return None
    (ifd,) = struct.unpack_from(order + "I", data, tiff + 4)
    entries = tiff + ifd
    if ifd < 8 or entries + 2 > end:
        return None
    (count,) = struct.unpack_from(order + "H", data, entries)
    for n in range(count):
        entry = entries + 2 + 12 * n
        if entry + 12 > end:
            return None
        tag, kind, values = struct.unpack_from(order + "HHI", data, entry)
        if tag == ORIENTATION_TAG:
            if kind != _SHORT or values != 1:
                return None
            (value,) = struct.unpack_from(order + "H", data, entry + 8)
            return entry + 8 if value != 1 else None
    return None
