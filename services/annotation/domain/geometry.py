"""Geometry rules, one function per annotation type: inside the image, not degenerate.

Every function takes the raw geometry and the image size and returns the
normalised geometry with the derived ``bbox`` and ``area`` (pixels), or raises
:class:`InvalidAnnotation` with a stable ``reason`` and a message a person can
act on. Conventions are those of ``shared/events/annotations_imported.py``
(COCO order ``[x, y, width, height]``, flat polygon rings, COCO RLE).
"""

from __future__ import annotations

import math
from typing import Any

from services.annotation.domain.errors import InvalidAnnotation
from services.annotation.domain.rle import checked_rle

TYPES = ("bbox", "polygon", "mask", "keypoints", "classification")
SHAPED = ("polygon", "mask")  # types whose bbox follows from the geometry
GEOMETRY_FIELDS = ("bbox", "polygon", "rle", "keypoints")
# Coordinates computed from normalised ones (YOLO) land a hair outside the image through float
# rounding; a thousandth of a pixel is forgiven, anything more is outside.
SLACK = 1e-3
# How far (pixels, per side) a given bbox of a polygon or mask may lie from the shape's bounds.
BBOX_TOLERANCE = 1.0


def _numbers(values: Any, what: str) -> list[float]:
    if not isinstance(values, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise InvalidAnnotation("not_numbers", f"{what} must be a list of numbers.")
    try:
        numbers = [float(v) for v in values]  # an integer beyond a float's range overflows here
    except OverflowError:
        numbers = [math.inf]
    if not all(math.isfinite(v) for v in numbers):
        raise InvalidAnnotation("not_numbers", f"{what} must hold finite numbers.")
    return numbers


def check_bbox(bbox: Any, height: int, width: int) -> list[float]:
    x, y, w, h = _numbers(bbox, "'bbox'") if isinstance(bbox, list) and len(bbox) == 4 else _bad_bbox()
    if w <= 0 or h <= 0:
        raise InvalidAnnotation("degenerate", f"The box {bbox} has zero area: width and height must be positive.")
    if x < -SLACK or y < -SLACK or x + w > width + SLACK or y + h > height + SLACK:
        raise InvalidAnnotation(
            "outside_image", f"The box {bbox} reaches outside the image ({width} wide, {height} high)."
        )
    return [x, y, w, h]


def _bad_bbox() -> tuple[float, float, float, float]:
    raise InvalidAnnotation("bbox_shape", "'bbox' must be [x, y, width, height] (four numbers, pixels).")


def _ring_area(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    return abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))) / 2


def check_polygon(rings: Any, height: int, width: int) -> tuple[list[list[float]], float, list[float]]:
    if not isinstance(rings, list) or not rings:
        raise InvalidAnnotation("polygon_shape", "'polygon' must be a non-empty list of rings [x1, y1, x2, y2, ...].")
    out: list[list[float]] = []
    area = 0.0
    for index, ring in enumerate(rings):
        flat = _numbers(ring, f"Ring {index}")
        if len(flat) % 2:
            raise InvalidAnnotation("polygon_shape", f"Ring {index} has an odd number of coordinates.")
        if len(flat) >= 8 and flat[:2] == flat[-2:]:
            flat = flat[:-2]  # an explicitly closed ring: the closing point repeats the first
        xs, ys = flat[0::2], flat[1::2]
        if len(set(zip(xs, ys, strict=True))) < 3:
            raise InvalidAnnotation("degenerate", f"Ring {index} needs at least three distinct points.")
        if min(xs) < -SLACK or min(ys) < -SLACK or max(xs) > width + SLACK or max(ys) > height + SLACK:
            raise InvalidAnnotation(
                "outside_image", f"Ring {index} reaches outside the image ({width} wide, {height} high)."
            )
        ring_area = _ring_area(xs, ys)
        if ring_area <= 0:
            raise InvalidAnnotation("degenerate", f"Ring {index} has zero area (its points are collinear).")
        area += ring_area
        out.append(flat)
    if len(out) > 1:
        area = _shape_area(out, area, height, width)
    xs = [v for ring in out for v in ring[0::2]]
    ys = [v for ring in out for v in ring[1::2]]
    return out, area, [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _shape_area(rings: list[list[float]], summed: float, height: int, width: int) -> float:
    """The area of several rings as one shape. Rings that lie apart (an object in parts) keep the exact sum
    of their areas. Rings that overlap or nest would count the shared pixels twice, while every reader
    (pycocotools, the VOC PNGs) fills their union: then the area is the union's pixel count, as COCO's
    ``area`` of a segment is."""
    union, parts = ring_pixels(rings, height, width)
    return float(union) if union < parts else summed


def ring_pixels(rings: list[list[float]], height: int, width: int) -> tuple[int, int]:
    """(pixels of the rings' union, sum of each ring's pixels) as pycocotools rasterises them: the two
    differ exactly when rings overlap or nest."""
    from pycocotools import mask as coco_mask  # here: validating a box needs no rasteriser

    parts = coco_mask.frPyObjects(rings, height, width)
    return int(coco_mask.area(coco_mask.merge(parts))), int(sum(coco_mask.area(parts)))


def check_keypoints(points: Any, height: int, width: int) -> list[list[float]]:
    if not isinstance(points, list) or not points:
        raise InvalidAnnotation("keypoints_shape", "'keypoints' must be a non-empty list of [x, y, visibility].")
    out = []
    for index, point in enumerate(points):
        if not isinstance(point, list) or len(point) != 3:
            raise InvalidAnnotation("keypoints_shape", f"Keypoint {index} must be [x, y, visibility].")
        x, y, v = _numbers(point, f"Keypoint {index}")
        if v not in (0, 1, 2):
            raise InvalidAnnotation(
                "keypoints_visibility", f"Keypoint {index}: visibility is 0 (not labelled), 1 (hidden) or 2 (visible)."
            )
        if v and not (-SLACK <= x <= width + SLACK and -SLACK <= y <= height + SLACK):
            raise InvalidAnnotation("outside_image", f"Keypoint {index} lies outside the image ({width}x{height}).")
        out.append([x, y, v])
    if not any(p[2] for p in out):
        raise InvalidAnnotation("degenerate", "At least one keypoint must be labelled (visibility 1 or 2).")
    return out


def _derived_box(given: list[float] | None, derived: list[float]) -> list[float]:
    """A polygon's or mask's box is its bounds. A given box within a pixel of them on every side is kept
    as given (COCO files round boxes, and COCO's crowd boxes are a pixel narrower than pycocotools'
    ``toBbox``), so a COCO round trip gives the file's boxes back; further off, box and shape disagree and
    exports would place the object where it is not: refused. No box given: the bounds."""
    if given is not None:
        ours = (derived[0], derived[1], derived[0] + derived[2], derived[1] + derived[3])
        theirs = (given[0], given[1], given[0] + given[2], given[1] + given[3])
        if any(abs(a - b) > BBOX_TOLERANCE for a, b in zip(ours, theirs, strict=True)):
            raise InvalidAnnotation(
                "bbox_mismatch",
                f"The bbox {given} is not the bounds of the geometry, {derived}: leave 'bbox' out and it is derived.",
            )
        return given
    return derived


def check_geometry(kind: str, geometry: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """Validate the geometry of one annotation of type ``kind``; return its stored fields. A box, polygon or
    mask may carry keypoints as well (a COCO person is all of these at once)."""
    fields = _shape(kind, geometry, height, width)
    if kind in ("bbox", "polygon", "mask") and geometry.get("keypoints") is not None:
        fields["keypoints"] = check_keypoints(geometry["keypoints"], height, width)
    return fields


def check_keypoint_count(keypoints: list[list[float]] | None, label: dict[str, Any]) -> None:
    """An annotation of a label with a keypoint schema has one point per keypoint name."""
    names = label.get("keypoints")
    if keypoints is not None and names and len(keypoints) != len(names):
        raise InvalidAnnotation(
            "keypoints_count",
            f"The label {label['name']!r} names {len(names)} keypoints ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); "
            f"this annotation has {len(keypoints)}. Give one [x, y, visibility] per name, [0, 0, 0] for one not labelled.",
        )


def _shape(kind: str, geometry: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    if kind not in TYPES:
        raise InvalidAnnotation("unknown_type", f"Unknown annotation type {kind!r}; use one of {', '.join(TYPES)}.")
    given = {k: v for k, v in geometry.items() if k in GEOMETRY_FIELDS and v is not None}
    box = check_bbox(given["bbox"], height, width) if "bbox" in given else None
    if kind == "bbox":
        if box is None:
            raise InvalidAnnotation("missing_geometry", "A bbox annotation needs 'bbox': [x, y, width, height].")
        return {"bbox": box, "area": box[2] * box[3]}
    if kind == "polygon":
        if "polygon" not in given:
            raise InvalidAnnotation("missing_geometry", "A polygon annotation needs 'polygon': a list of rings.")
        rings, area, derived = check_polygon(given["polygon"], height, width)
        return {"polygon": rings, "bbox": _derived_box(box, derived), "area": area}
    if kind == "mask":
        if "rle" not in given:
            raise InvalidAnnotation("missing_geometry", "A mask annotation needs 'rle': a COCO RLE object.")
        rle, area, derived = checked_rle(given["rle"], height, width)
        return {"rle": rle, "bbox": _derived_box(box, derived), "area": area}
    if kind == "keypoints":
        if "keypoints" not in given:
            raise InvalidAnnotation("missing_geometry", "A keypoints annotation needs 'keypoints'.")
        fields: dict[str, Any] = {"keypoints": check_keypoints(given["keypoints"], height, width)}
        if box is not None:
            fields.update(bbox=box, area=box[2] * box[3])
        return fields
    if given:
        raise InvalidAnnotation("unexpected_geometry", "A classification applies to the whole image: give no geometry.")
    return {}


def check_all(items: list[tuple[str, dict[str, Any], int, int]]) -> list[tuple[str, Any, str]]:
    """Validate many geometries (in a worker process for masks): ``("ok", fields, "")`` or ``("error", reason, detail)``."""
    out: list[tuple[str, Any, str]] = []
    for kind, geometry, height, width in items:
        try:
            out.append(("ok", check_geometry(kind, geometry, height, width), ""))
        except InvalidAnnotation as exc:
            out.append(("error", exc.reason, exc.detail))
    return out
