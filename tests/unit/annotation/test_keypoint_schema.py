"""Keypoint schemas: what a label may say about its keypoints, what annotations of it must then hold,
and what the COCO export writes of both (as person_keypoints files carry them)."""

from __future__ import annotations

import pytest

from tests.unit.annotation.coco_documents import coco_document
from services.annotation.domain.errors import InvalidAnnotation
from services.annotation.domain.geometry import check_geometry, check_keypoint_count
from shared.keypoint_schema import checked_schema

NAMES = ["nose", "left_eye", "right_eye"]


def test_a_schema_is_distinct_names_and_edges_between_them_counted_from_1():
    assert checked_schema(NAMES, None) == (NAMES, [])
    assert checked_schema(NAMES, [[1, 2], (1, 3)]) == (NAMES, [[1, 2], [1, 3]])


@pytest.mark.parametrize(
    ("names", "skeleton", "message"),
    [
        ([], None, "list of 1 to"),
        (["nose", ""], None, "something in it"),
        (["nose", "nose"], None, "distinct"),
        (NAMES, [[1, 4]], "from 1 to 3"),
        (NAMES, [[0, 1]], "from 1 to 3"),
        (NAMES, [[1, True]], "from 1 to 3"),
        (NAMES, [[1, 2, 3]], "pair"),
        (NAMES, [[2, 2]], "itself"),
        (NAMES, [[1, 2], [2, 1]], "repeats"),
        (None, [[1, 2]], "list of 1 to"),
    ],
)
def test_a_schema_that_does_not_hold_says_why(names, skeleton, message):
    with pytest.raises(ValueError, match=message):
        checked_schema(names, skeleton)


def test_a_box_polygon_or_mask_may_carry_keypoints_and_a_classification_may_not():
    points = [[12, 12, 2], [0, 0, 0], [15, 11, 1]]
    polygon = check_geometry("polygon", {"polygon": [[10, 10, 40, 10, 40, 40]], "keypoints": points}, 100, 200)
    assert polygon["keypoints"] == points and polygon["polygon"] == [[10, 10, 40, 10, 40, 40]]
    assert check_geometry("bbox", {"bbox": [1, 1, 5, 5], "keypoints": points}, 100, 200)["keypoints"] == points
    with pytest.raises(InvalidAnnotation) as outside:
        check_geometry("bbox", {"bbox": [1, 1, 5, 5], "keypoints": [[500, 1, 2]]}, 100, 200)
    assert outside.value.reason == "outside_image"
    with pytest.raises(InvalidAnnotation) as classified:
        check_geometry("classification", {"keypoints": points}, 100, 200)
    assert classified.value.reason == "unexpected_geometry"


def test_an_annotation_of_a_label_with_a_schema_has_one_point_per_name():
    label = {"name": "person", "keypoints": NAMES}
    check_keypoint_count([[1, 1, 2]] * 3, label)
    check_keypoint_count([[1, 1, 2]] * 2, {"name": "free"})  # no schema: any number
    with pytest.raises(InvalidAnnotation) as wrong:
        check_keypoint_count([[1, 1, 2]] * 2, label)
    assert wrong.value.reason == "keypoints_count" and "names 3 keypoints (nose, left_eye, right_eye)" in wrong.value.detail


def test_coco_export_writes_the_schema_on_the_category_and_the_points_on_the_object():
    images = [{"id": "i1", "file_name": "a.jpg", "width": 200, "height": 100}]
    labels = {"p": {"name": "person", "keypoints": NAMES, "skeleton": [[1, 2], [1, 3]], "external_ids": {}}}
    person = {
        "image_id": "i1", "label_id": "p", "type": "polygon", "polygon": [[10, 10, 40, 10, 40, 40]],
        "bbox": [10, 10, 30, 30], "area": 450, "keypoints": [[20, 15, 2], [25, 14, 1], [0, 0, 0]],
    }  # fmt: skip
    doc = coco_document(images, [person], labels, None)
    assert doc["categories"] == [{"id": 1, "name": "person", "supercategory": "", "keypoints": NAMES, "skeleton": [[1, 2], [1, 3]]}]
    [entry] = doc["annotations"]
    assert entry["keypoints"] == [20, 15, 2, 25, 14, 1, 0, 0, 0] and entry["num_keypoints"] == 2
    assert entry["segmentation"] == person["polygon"]  # one COCO object: outline and points together
