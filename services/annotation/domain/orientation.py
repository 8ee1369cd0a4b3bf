"""Exported JPEGs lose their EXIF orientation, losslessly, so every reader sees the frame the annotations use.

Annotations are in the stored pixel frame (as COCO's are). A JPEG whose EXIF ``Orientation`` asks for a
turn is read turned by OpenCV (and so by Ultralytics) and read as stored by PIL and torchvision: the same
export would train one tool on boxes that miss their objects. Setting the tag to 1 ("as stored") makes
every reader agree with the annotations. It is one 2-byte value inside the EXIF block, written in place:
the pixels, every other tag and every offset stay as they are, nothing is decoded or re-encoded.
"""

from __future__ import annotations

import struct

ORIENTATION_TAG = 0x0112
_SHORT = 3
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length (TEM, RSTn)
_START_OF_SCAN, _END_OF_IMAGE, _APP1 = 0xDA, 0xD9, 0xE1


def without_orientation(data: bytes) -> bytes:
    """``data`` with its EXIF orientation set to 1 when it is a JPEG that asks for a turn; otherwise ``data``.

    Anything that is not well-formed (not a JPEG, a cut segment, an IFD pointing outside its block) leaves
    the bytes untouched: this never fails an export.
    """
    if not data.startswith(b"\xff\xd8"):
        return data
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return data
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (_START_OF_SCAN, _END_OF_IMAGE):
            return data  # the headers are over: no EXIF orientation to clear
        (length,) = struct.unpack_from(">H", data, position + 2)
        start, end = position + 4, position + 2 + length
        if length < 2 or end > len(data):
            return data
        if marker == _APP1 and data[start : start + 6] == b"Exif\x00\x00":
            offset = _orientation_offset(data, start + 6, end)
            if offset is None:
                return data
            patched = bytearray(data)
            patched[offset : offset + 2] = (1).to_bytes(2, "little" if data[start + 6] == ord("I") else "big")
            return bytes(patched)
        position = end
    return data


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
