"""Pixels from annotations and polygons from pixels, for the segmentation exports: pure functions, no I/O.

Polygons and RLE masks are rasterised by pycocotools (the COCO reference
implementation), so an exported label image has exactly the pixels a COCO
reader would decode. Masks become polygons by OpenCV's contour tracing.
Index images are written as palette PNGs with the Pascal VOC devkit's colour
map, as VOC's ``SegmentationClass`` and ``SegmentationObject`` are.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from services.annotation.domain.geometry import ring_pixels

# 0 is background and 255 marks void in VOC label images: 254 classes or objects at the most.
MAX_INDEX = 254


def voc_colour(index: int) -> tuple[int, int, int]:
    """The VOC devkit's ``labelcolormap``: bits 0, 1, 2 of each three-bit group of ``index`` go to red,
    green and blue, the first group to the top bit (1 → (128, 0, 0), 15 → (192, 128, 128))."""
    r = g = b = 0
    for group in range(8):
        bits = index >> (3 * group)
        r |= (bits & 1) << (7 - group)
        g |= (bits >> 1 & 1) << (7 - group)
        b |= (bits >> 2 & 1) << (7 - group)
    return r, g, b


PALETTE = [value for index in range(256) for value in voc_colour(index)]


def has_shape(annotation: dict) -> bool:
    """Whether the annotation outlines pixels (a polygon or an RLE mask), not just a box."""
    return bool(annotation.get("polygon") or annotation.get("rle"))


def mask_of(annotation: dict, height: int, width: int) -> np.ndarray:
    """The annotation's pixels (``height`` × ``width``, 0/1): its polygon rings merged, or its RLE decoded.

    Masks are stored as compressed RLE of the image's size (``domain/rle.py`` checks both on the way in).
    """
    if annotation.get("rle"):
        return coco_mask.decode(annotation["rle"])
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(annotation["polygon"], height, width)))


def rings_overlap(rings: list[list[float]], height: int, width: int) -> bool:
    """Whether polygon rings of one object share pixels (overlap or nest) as pycocotools rasterises them:
    COCO readers fill their union, while an outline filled even-odd would leave the shared pixels out."""
    if len(rings) < 2:
        return False
    union, parts = ring_pixels(rings, height, width)
    return union < parts


def painted(layers: Iterable[tuple[int, np.ndarray]], height: int, width: int) -> np.ndarray:
    """An index image: 0 everywhere, then each layer's value on its pixels, in order (later layers cover earlier)."""
    out = np.zeros((height, width), np.uint8)
    for value, mask in layers:
        out[mask.astype(bool)] = value
    return out


def palette_png(indices: np.ndarray) -> bytes:
    """A "P"-mode PNG of an index image with the VOC colour map."""
    image = Image.fromarray(indices)
    image.putpalette(PALETTE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _corner_grid(mask: np.ndarray) -> np.ndarray:
    """The grid of pixel corners, a corner set when any of its four pixels is.

    OpenCV traces through the centres of the edge pixels, which would shrink a shape by half a pixel all
    round (a 10×10 square would come back 9×9). Traced through this grid instead, the rings run along
    pixel edges and rasterise back to the mask except along diagonal steps; parts with at most one pixel
    between them become one ring.
    """
    padded = np.pad(mask.astype(np.uint8), 1)
    return padded[:-1, :-1] | padded[1:, :-1] | padded[:-1, 1:] | padded[1:, 1:]


def _outer_rings_at_every_depth(mask: np.ndarray) -> list[list[float]]:
    """The outer edges of every part of the mask, parts inside another part's hole included, as flat rings
    ``[x1, y1, x2, y2, ...]`` in COCO pixel coordinates."""
    contours, hierarchy = cv2.findContours(_corner_grid(mask), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    parents = hierarchy[0][:, 3]

    def depth(i: int) -> int:
        levels = 0
        while parents[i] != -1:
            i, levels = parents[i], levels + 1
        return levels

    return [c.reshape(-1).astype(float).tolist() for i, c in enumerate(contours) if depth(i) % 2 == 0]


def rings_with_holes(mask: np.ndarray) -> list[list[float]]:
    """Rings that give the mask back, holes and all, when filled with the even-odd rule (as ``cv2.fillPoly``
    and YOLO's loaders fill): the outer edges of every part, parts inside holes included, and the edges
    of every hole, all along pixel edges (see :func:`_corner_grid`). A gap of one pixel between parts
    still closes.
    """
    from scipy import ndimage  # a dependency of imagehash; loaded only for exports with masks

    solid = mask.astype(bool)
    holes = ndimage.binary_fill_holes(solid) & ~solid
    return _outer_rings_at_every_depth(solid) + _outer_rings_at_every_depth(holes)


def bridged(rings: list[list[float]]) -> list[float]:
    """Several rings as one outline ``[x1, y1, ...]``: each further ring is joined to the outline so far by
    a bridge between their closest vertices, walked there and back.

    YOLO segmentation labels hold one outline per object, so an object in several parts (an occluded COCO
    instance, a mask in pieces) must be one line, as Ultralytics' own COCO converter writes it. Filled the
    way YOLO's loaders fill it (``cv2.fillPoly``, even-odd), the parts come back as they were; a bridge
    encloses nothing and at most shows as a one-pixel line.
    """
    from scipy.spatial import cKDTree  # a dependency of imagehash; loaded only for exports with parts

    parts = [np.asarray(ring, float).reshape(-1, 2) for ring in rings if len(ring) >= 6]
    if not parts:
        return []
    outline, rest = parts[0], parts[1:]
    while rest:
        tree = cKDTree(outline)
        nearest = [tree.query(part) for part in rest]  # per part: distances and outline indices of its vertices
        k = min(range(len(rest)), key=lambda n: nearest[n][0].min())
        j = int(nearest[k][0].argmin())
        i = int(nearest[k][1][j])
        part = rest.pop(k)
        around = np.concatenate([part[j:], part[: j + 1]])  # from the bridge vertex round to it again
        outline = np.concatenate([outline[: i + 1], around, outline[i:]])
    return outline.reshape(-1).tolist()
