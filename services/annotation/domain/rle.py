"""COCO RLE checks done before pycocotools touches the counts.

pycocotools trusts its input: a compressed RLE whose counts do not add up to
``height * width`` makes its C decoder write past the mask buffer. So the
counts string is first decoded here (the same LEB128-like scheme as
``rleFrString`` in pycocotools' ``maskApi.c``) and checked; only then is the
RLE handed to pycocotools for the bounding box.
"""

from __future__ import annotations

from typing import Any

from pycocotools import mask as coco_mask

from services.annotation.domain.errors import InvalidAnnotation


def counts_from_string(counts: str) -> list[int]:
    """Decode a compressed counts string; raise on characters outside the alphabet."""
    out: list[int] = []
    if not counts.isascii():  # encoded with replacement, 'é' would become '?', a character of the alphabet
        bad = next(c for c in counts if not c.isascii())
        raise ValueError(f"character {bad!r} is not in the RLE alphabet")
    data = counts.encode("ascii")
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                raise ValueError("counts string ends in the middle of a number")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {chr(data[p])!r} is not in the RLE alphabet")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def checked_rle(rle: Any, height: int, width: int) -> tuple[dict[str, Any], float, list[float]]:
    """Validate a COCO RLE against the image; return (compressed RLE, area, bbox)."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise InvalidAnnotation("rle_shape", "A mask is a COCO RLE object: {\"size\": [height, width], \"counts\": ...}.")
    size = rle["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise InvalidAnnotation("rle_shape", "The RLE 'size' must be [height, width] as two integers.")
    if size != [height, width]:
        raise InvalidAnnotation(
            "rle_size_mismatch",
            f"The RLE size {size} does not match the image ({height} high, {width} wide): give [height, width].",
        )
    raw = rle["counts"]
    if isinstance(raw, list):
        counts = raw
        if not all(isinstance(v, int) for v in counts):
            raise InvalidAnnotation("rle_counts", "Uncompressed RLE counts must be integers.")
    elif isinstance(raw, str):
        try:
            counts = counts_from_string(raw)
        except ValueError as exc:
            raise InvalidAnnotation("rle_counts", f"The RLE counts string is not valid: {exc}.") from None
    else:
        raise InvalidAnnotation("rle_counts", "RLE counts must be a compressed string or a list of integers.")
    if any(v < 0 for v in counts):
        raise InvalidAnnotation("rle_counts", "RLE counts must not be negative.")
    if sum(counts) != height * width:
        raise InvalidAnnotation(
            "rle_counts",
            f"The RLE counts cover {sum(counts)} pixels, but the image has {height * width} ({height}x{width}).",
        )
    area = float(sum(counts[1::2]))
    if area <= 0:
        raise InvalidAnnotation("degenerate", "The mask is empty (no foreground pixel).")
    compressed = coco_mask.frPyObjects({"size": size, "counts": counts}, height, width)
    bbox = [float(v) for v in coco_mask.toBbox(compressed)]
    return {"size": size, "counts": compressed["counts"].decode("ascii")}, area, bbox
