"""Exported JPEGs lose their EXIF orientation in place, so OpenCV reads the frame the annotations use."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from services.annotation.domain.orientation import ORIENTATION_TAG, without_orientation
from tests.photos import skimage_photo


def _jpeg(orientation: int | None) -> bytes:
    photo = Image.open(io.BytesIO(skimage_photo("rocket.jpg"))).convert("RGB")
    out = io.BytesIO()
    if orientation is None:
        photo.save(out, "JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[ORIENTATION_TAG] = orientation
        exif[0x010F] = "probe camera"  # Make: a tag besides, which must survive
        photo.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def _opencv_shape(data: bytes) -> tuple[int, int]:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_oriented_jpeg_is_read_as_stored_by_opencv_after_one_value_changes(orientation):
    data = _jpeg(orientation)
    stored = Image.open(io.BytesIO(data)).size[::-1]  # (height, width) of the stored pixels
    if orientation != 3:
        assert _opencv_shape(data) == stored[::-1]  # OpenCV applies the turn: width and height swapped
    cleared = without_orientation(data)
    assert _opencv_shape(cleared) == stored
    exif = Image.open(io.BytesIO(cleared)).getexif()
    assert exif[ORIENTATION_TAG] == 1 and exif[0x010F] == "probe camera"
    assert len(cleared) == len(data) and sum(a != b for a, b in zip(cleared, data)) == 1  # one byte: 6 → 1
    decoded = cv2.imdecode(np.frombuffer(cleared, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert np.array_equal(decoded, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION))


def test_a_big_endian_exif_block_is_cleared_too():
    plain = _jpeg(None)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", ORIENTATION_TAG, 3, 1, 6, 0) + b"\0\0\0\0"
    data = plain[:2] + _app1(tiff) + plain[2:]
    assert Image.open(io.BytesIO(data)).getexif()[ORIENTATION_TAG] == 6
    assert Image.open(io.BytesIO(without_orientation(data))).getexif()[ORIENTATION_TAG] == 1


def test_what_needs_no_change_or_cannot_be_read_is_left_as_it_is():
    upright = _jpeg(1)
    no_exif = _jpeg(None)
    png = skimage_photo("camera.png")
    cut = _jpeg(6)[:40]  # the EXIF segment says it is longer than what is there
    for data in (upright, no_exif, png, cut, b"", b"\xff\xd8"):
        assert without_orientation(data) == data


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_other_formats_that_carry_exif_are_cleared_too(fmt):
    photo = Image.open(io.BytesIO(skimage_photo("rocket.jpg"))).convert("RGB").reduce(4)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    out = io.BytesIO()
    photo.save(out, fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
    data = out.getvalue()
    stored = photo.size[::-1]
    assert _opencv_shape(data) == stored[::-1]  # OpenCV turns these too
    cleared = without_orientation(data)
    assert _opencv_shape(cleared) == stored
    reread = Image.open(io.BytesIO(cleared))
    reread.load()  # a PNG whose chunk CRC no longer matched would fail here
    assert reread.getexif()[ORIENTATION_TAG] == 1 and len(cleared) == len(data)


def test_an_orientation_in_a_later_exif_segment_is_found():
    """Some writers put a first Exif APP1 without the tag (or an XMP APP1) before the one that has it."""
    oriented = _jpeg(6)
    app1_without = _app1(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0) + b"\0\0\0\0")
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"
    xmp_segment = b"\xff\xe1" + struct.pack(">H", len(xmp) + 2) + xmp
    data = oriented[:2] + app1_without + xmp_segment + oriented[2:]
    assert _opencv_shape(without_orientation(data)) == Image.open(io.BytesIO(data)).size[::-1]


def _app1(tiff: bytes) -> bytes:
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
