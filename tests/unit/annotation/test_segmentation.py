"""Segmentation helpers: the VOC colour map, pycocotools rasterising, and masks traced to outlines that
rasterise back to the same pixels (synthetic shapes, scikit-image's horse, the COCO sample's crowd masks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
from pycocotools import mask as coco_mask

from services.annotation.domain import segmentation
from tests.photos import require_coco

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _rasterised(rings: list[list[float]], height: int, width: int) -> np.ndarray:
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(rings, height, width))).astype(bool)


def _even_odd(rings: list[list[float]], height: int, width: int) -> np.ndarray:
    """Pixels inside the rings under the even-odd rule: inside an odd number of them (a pixel is inside a ring
    when its centre is)."""
    from skimage.draw import polygon2mask

    inside = np.zeros((height, width), bool)
    for ring in rings:
        xy = np.array(ring, float).reshape(-1, 2) - 0.5  # pixel edges to pixel centres
        inside ^= polygon2mask((height, width), xy[:, ::-1])
    return inside


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_voc_colours_are_the_devkit_colour_map():
    # aeroplane, bicycle, bird, boat, dog, person, tvmonitor and void as the VOC2012 devkit lists them
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128), 12: (64, 0, 128),
                15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}  # fmt: skip
    assert {index: segmentation.voc_colour(index) for index in expected} == expected
    assert len(segmentation.PALETTE) == 768 and segmentation.PALETTE[15 * 3 : 16 * 3] == [192, 128, 128]


def test_a_polygon_and_its_rle_give_the_same_pixels():
    ring = [3, 2, 17, 4, 12, 15, 2, 11]
    polygon = {"polygon": [ring]}
    rle = coco_mask.merge(coco_mask.frPyObjects([ring], 20, 24))
    mask = {"rle": {"size": rle["size"], "counts": rle["counts"].decode()}}
    assert np.array_equal(segmentation.mask_of(polygon, 20, 24), segmentation.mask_of(mask, 20, 24))
    assert segmentation.has_shape(polygon) and segmentation.has_shape(mask) and not segmentation.has_shape({"bbox": [1, 1, 2, 2]})


def test_outlines_follow_pixel_edges():
    mask = np.zeros((30, 40), np.uint8)
    mask[5:15, 20:30] = 1  # a 10 x 10 square
    mask[25, 3] = 1  # a single pixel
    rings = segmentation.rings_with_holes(mask)
    assert sorted(sorted(zip(ring[0::2], ring[1::2], strict=True)) for ring in rings) == [
        [(3, 25), (3, 26), (4, 25), (4, 26)],
        [(20, 5), (20, 15), (30, 5), (30, 15)],
    ]
    assert np.array_equal(_rasterised(rings, 30, 40), mask.astype(bool))


def test_a_real_silhouette_traces_to_an_outline_that_rasterises_back():
    horse = ~skimage.data.horse()  # the horse is the dark part
    outline = segmentation.bridged(segmentation.rings_with_holes(horse))  # the one line yolo-seg writes
    assert _iou(_rasterised([outline], *horse.shape), horse) > 0.95


def test_the_coco_sample_crowd_masks_trace_to_outlines_that_rasterise_back():
    data = json.loads((require_coco() / "annotations" / "instances.json").read_text())
    crowd = [a for a in data["annotations"] if a["iscrowd"]]
    for a in crowd:
        height, width = a["segmentation"]["size"]
        mask = coco_mask.decode(coco_mask.frPyObjects(a["segmentation"], height, width)).astype(bool)
        outline = segmentation.bridged(segmentation.rings_with_holes(mask))
        assert _iou(_rasterised([outline], height, width), mask) > 0.95, a["id"]


def test_rings_with_holes_give_a_ring_shape_back_with_its_hole_and_an_island_inside_it():
    yy, xx = np.mgrid[:80, :80]
    distance = (xx - 40) ** 2 + (yy - 40) ** 2
    shape = ((distance < 30**2) & (distance > 15**2)) | (distance < 6**2)  # a ring, and a disc in its hole
    rings = segmentation.rings_with_holes(shape)
    assert len(rings) == 3  # the ring's outer edge, the hole's edge, the island's edge
    filled = _even_odd(rings, 80, 80)
    assert filled[40, 40] and not filled[40, 30] and filled[40, 15]  # island, hole, ring
    assert _iou(filled, shape) > 0.93  # the edges follow pixel edges but cut diagonal steps (the disc of radius 6 is small)
