"""The ``yolo-pose`` export as pure functions: the line writer, flip_idx from the keypoint names, the one
schema a dataset may have, and the files read back by ingest's own YOLO pose reader."""

from __future__ import annotations

import pytest
import yaml

from services.annotation.domain import export_formats, pose
from services.annotation.domain.errors import InvalidAnnotation
from services.ingest.domain.datasets import fitted, in_pixels, read_dataset

COCO_PERSON = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
HAND = ["head", "left_hand", "right_hand"]
IMAGES = [{"id": "i1", "file_name": "a.jpg", "width": 200, "height": 100}, {"id": "i2", "file_name": "b.png", "width": 50, "height": 40}]
LABELS = {
    "walker": {"name": "walker", "keypoints": HAND},
    "robot": {"name": "robot", "keypoints": HAND},  # the same schema: one kpt_shape
    "car": {"name": "car"},
    "person": {"name": "person", "keypoints": COCO_PERSON},
}
BOXED = {"_id": "a1", "image_id": "i1", "label_id": "walker", "type": "bbox", "bbox": [10, 20, 50, 40], "keypoints": [[20, 30, 2], [10, 60, 1], [0, 0, 0]]}
POINTS_ONLY = {"_id": "a2", "image_id": "i1", "label_id": "robot", "type": "keypoints", "keypoints": [[100, 50, 2], [7, 7, 0], [150, 80, 1]]}
NO_POINTS = {"_id": "a3", "image_id": "i2", "label_id": "walker", "type": "polygon", "bbox": [0, 0, 50, 40], "polygon": [[0, 0, 50, 0, 50, 40]]}
CAR = {"_id": "a4", "image_id": "i2", "label_id": "car", "type": "bbox", "bbox": [5, 5, 10, 10]}
CLASS_ONLY = {"_id": "a5", "image_id": "i2", "label_id": "car", "type": "classification"}


# flip_idx


def test_flip_idx_of_coco_person_keypoints_is_ultralytics_own():
    assert pose.flip_idx(COCO_PERSON) == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def test_flip_idx_pairs_sides_however_they_are_spelled():
    assert pose.flip_idx(["head", "leftHand", "RightHand", "hip_l", "hip_r", "Left Foot", "right-foot"]) == [0, 2, 1, 4, 3, 6, 5]


def test_flip_idx_is_the_identity_without_pairs():
    assert pose.flip_idx(["nose", "tail", "fin"]) == [0, 1, 2]
    # a left without a right, and a side word inside another word ("leftover", "bright") stay where they are
    assert pose.flip_idx(["left_eye", "leftover", "bright", "nose"]) == [0, 1, 2, 3]


def test_flip_idx_leaves_a_partner_spelled_twice_alone():
    # "left_eye" and "left eye" are the same words: which one "right_eye" mirrors is unknown, so none is paired
    assert pose.flip_idx(["left_eye", "left eye", "right_eye"]) == [0, 1, 2]


@pytest.mark.parametrize("names", [COCO_PERSON, HAND, ["l", "r", "x"], ["a_left", "b_left", "a_right", "b_right"]])
def test_flip_idx_is_a_permutation_that_undoes_itself(names):
    flips = pose.flip_idx(names)
    assert sorted(flips) == list(range(len(names)))
    assert [flips[f] for f in flips] == list(range(len(names)))


# the line writer


def _lines(files: dict[str, str], name: str) -> list[list[str]]:
    return [line.split() for line in files[f"labels/{name}.txt"].splitlines()]


def test_a_box_with_points_is_its_box_and_its_normalised_points_with_their_visibility():
    line = export_formats.pose_coordinates(BOXED, 200, 100, 3)
    assert line == ["0.175000 0.400000 0.250000 0.400000 0.100000 0.300000 2 0.050000 0.600000 1 0 0 0"]


def test_a_keypoints_annotation_without_a_box_is_boxed_by_its_labelled_points_as_coco_does():
    [line] = export_formats.pose_coordinates(POINTS_ONLY, 200, 100, 3)
    x, y, w, h = export_formats.keypoint_box(POINTS_ONLY["keypoints"])  # the COCO export's box for it
    assert (x, y, w, h) == (100, 50, 50, 30)  # the unlabelled (7, 7) does not count
    assert line.split()[:4] == [f"{(x + w / 2) / 200:.6f}", f"{(y + h / 2) / 100:.6f}", f"{w / 200:.6f}", f"{h / 100:.6f}"]
    assert line.split()[4:] == ["0.500000", "0.500000", "2", "0", "0", "0", "0.750000", "0.800000", "1"]  # (7, 7, 0) → 0 0 0


def test_an_object_without_points_has_every_point_zero():
    assert export_formats.pose_coordinates(NO_POINTS, 50, 40, 3) == ["0.500000 0.500000 1.000000 1.000000 0 0 0 0 0 0 0 0 0"]


def test_a_point_on_the_edge_stays_within_one():
    edge = {**BOXED, "keypoints": [[200.0004, 100, 2], [0, 0, 2], [0, 0, 0]]}
    values = export_formats.pose_coordinates(edge, 200, 100, 3)[0].split()[4:]
    assert values == ["1.000000", "1.000000", "2", "0.000000", "0.000000", "2", "0", "0", "0"]


def test_yolo_pose_files_number_classes_as_yolo_does_and_say_the_kpt_shape():
    annotations = [BOXED, POINTS_ONLY, NO_POINTS, CAR, CLASS_ONLY]
    files = export_formats.yolo_pose(IMAGES, annotations, LABELS)
    # as yolo numbers them, a keypoints annotation without a box (robot) being an object here too
    assert files["classes.txt"] == "car\nrobot\nwalker\n" and export_formats.yolo(IMAGES, annotations, LABELS)["classes.txt"] == "car\nwalker\n"
    data = yaml.safe_load(files["data.yaml"])
    assert data["kpt_shape"] == [3, 3] and data["flip_idx"] == [0, 2, 1]
    assert data["names"] == {0: "car", 1: "robot", 2: "walker"} and data["kpt_names"] == {0: HAND, 1: HAND, 2: HAND}
    assert [line[0] for line in _lines(files, "a")] == ["2", "1"]
    # a class without a schema (car) beside one with: its box with every point 0 0 0; the classification is no object
    assert _lines(files, "b") == [["2", *"0.500000 0.500000 1.000000 1.000000".split(), *["0"] * 9], ["0", "0.200000", "0.250000", "0.200000", "0.250000", *["0"] * 9]]
    ordered = export_formats.yolo_pose(IMAGES, annotations, LABELS, ["walker", "robot", "car", "dog"])
    assert ordered["classes.txt"] == "walker\nrobot\ncar\ndog\n" and [line[0] for line in _lines(ordered, "a")] == ["0", "1"]


def test_every_line_has_the_numbers_kpt_shape_asks_for():
    person = {"_id": "p", "image_id": "i1", "label_id": "person", "type": "bbox", "bbox": [0, 0, 200, 100],
              "keypoints": [[n * 10, n * 5, n % 3] for n in range(17)]}  # fmt: skip
    files = export_formats.yolo_pose(IMAGES, [person, {**person, "keypoints": None}], LABELS)
    assert yaml.safe_load(files["data.yaml"])["kpt_shape"] == [17, 3]
    assert [len(line) for line in _lines(files, "a")] == [1 + 4 + 17 * 3] * 2
    coordinates = [v for line in _lines(files, "a") for n, v in enumerate(line[5:]) if n % 3 != 2]
    assert all(0 <= float(v) <= 1 for v in coordinates) and _lines(files, "a")[0][7::3] == [str(n % 3) for n in range(17)]


# one schema per dataset


def _refusal(annotations: list[dict], labels: dict = LABELS) -> InvalidAnnotation:
    with pytest.raises(InvalidAnnotation) as caught:
        export_formats.yolo_pose(IMAGES, annotations, labels)
    return caught.value


def test_labels_with_different_schemas_are_refused_naming_them():
    person = {"_id": "p", "image_id": "i1", "label_id": "person", "type": "keypoints", "keypoints": [[1, 1, 2]] * 17}
    refusal = _refusal([BOXED, person])
    assert refusal.reason == "keypoint_schemas_differ" and refusal.extra["labels"] == ["person", "walker"]
    assert "'person' (17 points)" in refusal.detail and "'walker' (3 points)" in refusal.detail and "kpt_shape" in refusal.detail


def test_a_selection_without_any_schema_is_refused():
    refusal = _refusal([CAR])
    assert refusal.reason == "no_keypoint_schema" and "'car'" in refusal.detail
    assert _refusal([CLASS_ONLY]).reason == "no_keypoint_schema"  # nothing to give kpt_shape either


def test_points_of_a_label_without_a_schema_are_refused_not_dropped():
    refusal = _refusal([BOXED, {**CAR, "keypoints": [[1, 1, 2], [2, 2, 2], [3, 3, 2]]}])
    assert refusal.reason == "keypoints_without_schema" and refusal.extra["labels"] == ["car"]


def test_points_made_before_the_schema_changed_are_refused_naming_the_annotation():
    refusal = _refusal([BOXED, {**POINTS_ONLY, "keypoints": [[1, 1, 2]]}])
    assert refusal.reason == "keypoints_count" and refusal.extra["annotations"] == ["a2"] and "a2 (1 points)" in refusal.detail


# the inverse: ingest's YOLO reader


def test_the_yolo_reader_reads_the_export_back(tmp_path):
    files = export_formats.yolo_pose(IMAGES, [BOXED, POINTS_ONLY, NO_POINTS], LABELS)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "images").mkdir()
    for image in IMAGES:
        (tmp_path / "images" / image["file_name"]).write_bytes(b"not decoded by the reader")
    dataset = read_dataset("yolo", tmp_path, "back")
    assert dataset.warnings == []
    a, b = ([fitted(in_pixels(x, image["width"], image["height"]), image["width"], image["height"])[0] for x in item.annotations]
            for item, image in zip(dataset.items, IMAGES, strict=True))  # fmt: skip
    walker, robot = a
    assert (walker.label, walker.type, walker.bbox, walker.keypoints) == ("walker", "bbox", [10, 20, 50, 40], BOXED["keypoints"])
    assert robot.bbox == [100, 50, 50, 30] and robot.keypoints == [[100, 50, 2], [0, 0, 0], [150, 80, 1]]
    [shape] = b
    assert shape.bbox == [0, 0, 50, 40] and shape.keypoints is None  # all points 0 0 0: a box without points
