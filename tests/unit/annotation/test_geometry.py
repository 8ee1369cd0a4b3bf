"""Geometry rules: each type's checks, and the RLE decoder against pycocotools' own encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from services.annotation.domain.errors import InvalidAnnotation
from services.annotation.domain.geometry import check_all, check_geometry
from services.annotation.domain.rle import checked_rle, counts_from_string
from tests.photos import coco_dir


def reason(kind, geometry, h=100, w=200):
    with pytest.raises(InvalidAnnotation) as caught:
        check_geometry(kind, geometry, h, w)
    return caught.value.reason


def test_bbox_inside_and_positive():
    assert check_geometry("bbox", {"bbox": [0, 0, 200, 100]}, 100, 200) == {"bbox": [0, 0, 200, 100], "area": 20000}
    assert reason("bbox", {"bbox": [0, 0, 201, 100]}) == "outside_image"
    assert reason("bbox", {"bbox": [-1, 0, 2, 2]}) == "outside_image"
    assert reason("bbox", {"bbox": [0, 0, 2, 0]}) == "degenerate"
    assert reason("bbox", {"bbox": [0, 0, "2", 2]}) == "not_numbers"
    assert reason("bbox", {"bbox": [0, 0, float("nan"), 2]}) == "not_numbers"
    assert reason("bbox", {}) == "missing_geometry"


def test_polygon_rings_closed_and_non_trivial():
    fields = check_geometry("polygon", {"polygon": [[0, 0, 4, 0, 4, 4, 0, 4, 0, 0], [10, 10, 12, 10, 10, 12]]}, 100, 200)
    assert fields["polygon"][0] == [0, 0, 4, 0, 4, 4, 0, 4]  # the repeated closing point is dropped
    assert fields["area"] == 16 + 2 and fields["bbox"] == [0, 0, 12, 12]
    assert reason("polygon", {"polygon": [[0, 0, 1, 1, 2, 2]]}) == "degenerate"  # collinear
    assert reason("polygon", {"polygon": [[0, 0, 1, 1, 0, 0]]}) == "degenerate"  # two distinct points
    assert reason("polygon", {"polygon": []}) == "polygon_shape"
    assert reason("polygon", {"polygon": [[0, 0, 1, 1, 2]]}) == "polygon_shape"


def test_keypoints_visibility_and_bounds():
    assert check_geometry("keypoints", {"keypoints": [[1, 1, 2], [500, 500, 0]]}, 100, 200)["keypoints"][1] == [500, 500, 0]
    assert reason("keypoints", {"keypoints": [[500, 1, 1]]}) == "outside_image"
    assert reason("keypoints", {"keypoints": [[1, 1]]}) == "keypoints_shape"


def test_classification_has_no_geometry():
    assert check_geometry("classification", {}, 100, 200) == {}
    assert reason("classification", {"bbox": [0, 0, 1, 1]}) == "unexpected_geometry"
    assert reason("cuboid", {}) == "unknown_type"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.data())
def test_counts_decoder_matches_pycocotools(h, w, data):
    pixels = data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    mask = np.asfortranarray(np.array(pixels, dtype=np.uint8).reshape(h, w))
    encoded = coco_mask.encode(mask)
    counts = counts_from_string(encoded["counts"].decode())
    assert sum(counts) == h * w
    assert sum(counts[1::2]) == int(mask.sum())
    if mask.any():
        rle, area, bbox = checked_rle({"size": [h, w], "counts": encoded["counts"].decode()}, h, w)
        assert area == mask.sum() and rle["counts"] == encoded["counts"].decode()
        assert bbox == [float(v) for v in coco_mask.toBbox(encoded)]


def test_rle_checks_reject_what_would_crash_the_decoder():
    assert reason("mask", {"rle": {"size": [100, 200], "counts": [10, 10]}}) == "rle_counts"
    assert reason("mask", {"rle": {"size": [100, 200], "counts": "\x7f\x7f"}}) == "rle_counts"
    assert reason("mask", {"rle": {"size": [200, 100], "counts": [20000]}}) == "rle_size_mismatch"
    assert reason("mask", {"rle": {"size": [100, 200], "counts": [-5, 20005]}}) == "rle_counts"
    assert reason("mask", {"rle": [1, 2]}) == "rle_shape"


def test_the_coco_sample_crowd_masks_pass_with_their_pixel_area():
    """COCO's own 'area' of crowd masks is not the pixel count; ours is, as pycocotools counts it."""
    found = coco_dir()
    if found is None:
        pytest.skip("COCO sample not found: set CORPUS_TEST_DATA")
    data = json.loads((found / "annotations" / "instances.json").read_text())
    images = {i["id"]: i for i in data["images"]}
    crowd = [a for a in data["annotations"] if a["iscrowd"]]
    assert len(crowd) == 10
    items = [("mask", {"rle": a["segmentation"], "bbox": a["bbox"]}, images[a["image_id"]]["height"], images[a["image_id"]]["width"]) for a in crowd]
    results = check_all(items)
    assert all(outcome == "ok" for outcome, _, _ in results)
    for (_, fields, _), a in zip(results, crowd, strict=True):
        h, w = a["segmentation"]["size"]
        assert fields["area"] == coco_mask.area(coco_mask.frPyObjects(a["segmentation"], h, w))
        assert fields["bbox"] == a["bbox"]


def test_overlapping_or_nested_rings_count_their_pixels_once():
    from pycocotools import mask as coco_mask

    overlap = [[20, 140, 80, 140, 80, 200, 20, 200], [50, 170, 110, 170, 110, 230, 50, 230]]
    nested = [[150, 20, 250, 20, 250, 120, 150, 120], [180, 50, 220, 50, 220, 90, 180, 90]]
    for rings in (overlap, nested):
        fields = check_geometry("polygon", {"polygon": rings}, 240, 320)
        union = coco_mask.area(coco_mask.merge(coco_mask.frPyObjects(rings, 240, 320)))
        assert fields["area"] == union  # what pycocotools' annToMask(...).sum() gives
    apart = check_geometry("polygon", {"polygon": [[0, 0, 4, 0, 4, 4, 0, 4], [10, 10, 12, 10, 10, 12]]}, 100, 200)
    assert apart["area"] == 16 + 2  # parts that lie apart keep their exact areas
