"""Dataset readers on what real exports write: boxes on or a hair past the image's edge, COCO 2017's own
layout, YOLO class names with gaps, YOLO pose labels, VOC flags and parts, COCO entries that say nothing
usable. Geometry is checked with the annotation service's own rules, which is what refuses it downstream."""

import json

import pytest

from services.annotation.domain.errors import InvalidAnnotation
from services.annotation.domain.geometry import check_bbox, check_keypoints, check_polygon
from services.ingest.domain.datasets import EDGE_TOLERANCE, fitted, in_pixels, read_dataset
from tests.unit.ingest.datasets import voc_object, write_coco, write_voc, write_yolo

PHOTO = b"not decoded by the readers"


def _read_in_pixels(tmp_path, width: int, height: int):
    """The YOLO dataset's first image's annotations in pixels and fitted to the image, with each one's warning."""
    ds = read_dataset("yolo", tmp_path, "x")
    return [fitted(in_pixels(a, width, height), width, height) for a in ds.items[0].annotations], ds


def _yolo_in_pixels(tmp_path, line: str, width: int, height: int):
    write_yolo(tmp_path, {"a": line}, {"a.jpg": PHOTO})
    return _read_in_pixels(tmp_path, width, height)


# Boxes at or just past the edge


def test_a_yolo_box_ending_on_the_edge_is_not_pushed_past_it_by_rounding(tmp_path):
    [(box, warning)], _ = _yolo_in_pixels(tmp_path, "0 0.612125 0.5 0.77575 0.5", 380, 300)
    assert warning is None
    assert box.bbox[0] + box.bbox[2] <= 380
    check_bbox(box.bbox, 300, 380)


def test_a_yolo_box_a_hair_past_the_edge_is_moved_onto_it(tmp_path):
    # 0.09 px past the right edge of a 380 px image, as exporters that do not clip write it
    cx, w = (380.09 - 100) / 2 / 380 + 100 / 380, (380.09 - 100) / 380
    [(box, warning)], _ = _yolo_in_pixels(tmp_path, f"0 {cx:.8f} 0.5 {w:.8f} 0.5", 380, 300)
    assert warning is None
    assert box.bbox == pytest.approx([100, 75, 280, 150], abs=0.01)
    check_bbox(box.bbox, 300, 380)


def test_a_yolo_polygon_a_hair_outside_is_moved_onto_the_edge(tmp_path):
    [(shape, warning)], _ = _yolo_in_pixels(tmp_path, "0 -0.001 0.1 1.002 0.1 0.5 0.9", 380, 300)
    assert warning is None
    check_polygon(shape.polygon, 300, 380)
    assert shape.polygon[0][:4] == [0.0, 30.0, 380.0, 30.0]


def test_a_voc_box_written_from_zero_starts_on_the_edge(tmp_path):
    write_voc(tmp_path, {"a": ("a.jpg", voc_object("cat", (0, 0, 100, 100)))}, {"a.jpg": PHOTO})
    [box] = read_dataset("voc", tmp_path, "x").items[0].annotations
    assert box.bbox == [-1.0, -1.0, 101.0, 101.0]  # 1-based corners read as such
    moved, warning = fitted(box, 100, 100)
    assert warning is None and moved.bbox == [0.0, 0.0, 100.0, 100.0]
    check_bbox(moved.bbox, 100, 100)


def test_a_box_further_outside_is_kept_as_it_is_with_a_warning(tmp_path):
    [(box, warning)], _ = _yolo_in_pixels(tmp_path, "0 0.6 0.5 0.9 0.5", 380, 300)  # ends 19 px past the edge
    assert box.bbox == pytest.approx([57.0, 75.0, 342.0, 150.0])
    assert warning == (
        f"labels/a.txt:1: reaches 19.00 px outside the 380×300 image (more than the {EDGE_TOLERANCE:g} px moved onto "
        "the edge); sent as it is, which the annotation service refuses"
    )
    with pytest.raises(InvalidAnnotation, match="outside the image"):
        check_bbox(box.bbox, 300, 380)


# COCO 2017's own layout


@pytest.mark.parametrize("folder", ["val2017", "images/val2017"])
def test_coco_2017_images_are_found_in_the_folder_named_by_the_json(tmp_path, folder):
    (tmp_path / "annotations").mkdir()
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "a.jpg").write_bytes(PHOTO)
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "gone.jpg"}], "annotations": [], "categories": []}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    ds = read_dataset("coco", tmp_path / "annotations" / "instances_val2017.json", "x")
    assert ds.items[0].path == tmp_path / folder / "a.jpg"
    assert tmp_path / "val2017" / "gone.jpg" in ds.items[1].looked_at
    assert tmp_path / "images" / "val2017" / "gone.jpg" in ds.items[1].looked_at


# YOLO class names with gaps


def test_yolo_names_as_a_mapping_with_a_gap_keep_their_numbers(tmp_path):
    write_yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.4 0.4\n1 0.5 0.5 0.1 0.1"}, {"a.jpg": PHOTO})
    (tmp_path / "classes.txt").unlink()
    (tmp_path / "data.yaml").write_text("names:\n  0: person\n  2: car\n")
    ds = read_dataset("yolo", tmp_path, "x")
    assert [(a.source_id, a.label) for a in ds.items[0].annotations] == [("labels/a.txt:1", "person"), ("labels/a.txt:2", "car")]
    assert {name: c.external_id for name, c in ds.categories.items()} == {"person": "0", "car": "2"}
    assert ds.warnings == ["labels/a.txt:3: class 1 is not among the class names (numbers 0, 2)"]


def test_a_blank_line_amid_classes_txt_is_a_class_without_a_name_not_a_shift(tmp_path):
    lines = "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2"
    write_yolo(tmp_path, {"a": lines}, {"a.jpg": PHOTO}, classes="cat\n\ndog\n\n\n")
    ds = read_dataset("yolo", tmp_path, "x")
    assert [a.label for a in ds.items[0].annotations] == ["cat", "dog"]
    assert ds.categories["dog"].external_id == "2"
    assert ds.warnings == ["labels/a.txt:2: class 1 has no name (a blank line in the class names); skipped"]


# YOLO pose


def test_yolo_pose_lines_are_boxes_carrying_their_keypoints(tmp_path):
    points = [0.5, 0.4, 2] * 16 + [0, 0, 0]
    line = "0 0.5 0.5 0.4 0.6 " + " ".join(map(str, points))
    write_yolo(tmp_path, {"a": line}, {"a.jpg": PHOTO}, classes="person\n")
    (tmp_path / "data.yaml").write_text("kpt_shape: [17, 3]\n")
    [(person, warning)], ds = _read_in_pixels(tmp_path, 200, 100)
    assert ds.warnings == [] and warning is None
    assert person.type == "bbox" and person.bbox == [60.0, 20.0, 80.0, 60.0]
    assert len(person.keypoints) == 17
    assert person.keypoints[0] == [100.0, 40.0, 2.0] and person.keypoints[16] == [0.0, 0.0, 0.0]
    check_keypoints(person.keypoints, 100, 200)


def test_yolo_pose_points_without_visibility_are_visible_unless_at_the_origin(tmp_path):
    write_yolo(tmp_path, {"a": "0 0.5 0.5 0.4 0.6 0.5 0.4 0 0 0.25 0.5 0.75 0.5\n0 0.5 0.5 0.4 0.6 0.5"}, {"a.jpg": PHOTO}, classes="hand\n")
    (tmp_path / "data.yaml").write_text("kpt_shape: [4, 2]\n")
    [(hand, _)], ds = _read_in_pixels(tmp_path, 200, 100)
    assert hand.type == "bbox" and hand.polygon is None
    assert hand.keypoints == [[100.0, 40.0, 2.0], [0.0, 0.0, 0.0], [50.0, 50.0, 2.0], [150.0, 50.0, 2.0]]
    assert ds.warnings == ["labels/a.txt:2: 5 numbers: a pose line of kpt_shape [4, 2] has 4 + 8"]


# VOC flags and parts


def test_voc_flags_written_as_floats_or_words_keep_the_box(tmp_path):
    flags = "<truncated>0.0</truncated><difficult>false</difficult><occluded>Yes</occluded>"
    write_voc(tmp_path, {"a": ("a.jpg", voc_object("dog", (2, 2, 8, 8), flags))}, {"a.jpg": PHOTO})
    ds = read_dataset("voc", tmp_path, "x")
    [dog] = ds.items[0].annotations
    assert dog.attributes == {"truncated": 0, "difficult": 0, "occluded": 1}
    assert ds.warnings == []


def test_voc_parts_are_boxes_of_their_own_pointing_at_their_object(tmp_path):
    part = "<part><name>{}</name><bndbox><xmin>{}</xmin><ymin>2</ymin><xmax>{}</xmax><ymax>5</ymax></bndbox></part>"
    parts = part.format("head", 3, 6) + part.format("hand", 7, 8) + "<part><name>foot</name></part>"
    write_voc(tmp_path, {"a": ("a.jpg", voc_object("person", (2, 2, 20, 30), parts))}, {"a.jpg": PHOTO})
    ds = read_dataset("voc", tmp_path, "x")
    got = [(a.source_id, a.label, a.bbox, a.attributes) for a in ds.items[0].annotations]
    assert got == [
        ("Annotations/a.xml#0", "person", [1.0, 1.0, 19.0, 29.0], {}),
        ("Annotations/a.xml#0.part0", "head", [2.0, 1.0, 4.0, 4.0], {"part_of": "Annotations/a.xml#0"}),
        ("Annotations/a.xml#0.part1", "hand", [6.0, 1.0, 2.0, 4.0], {"part_of": "Annotations/a.xml#0"}),
    ]
    assert {"person", "head", "hand"} <= set(ds.categories)
    assert ds.warnings == ["Annotations/a.xml#0.part2: a part without bndbox; the part is skipped"]


# COCO entries that cannot be imported say so


def test_coco_annotations_of_no_image_and_rings_too_short_are_warnings(tmp_path):
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "segmentation": [[1, 1, 5, 1]]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "segmentation": [[1, 1, 5, 1, 5, 5], [9, 9]]},
        {"id": 3, "image_id": 99, "category_id": 1, "bbox": [1, 1, 4, 4]},
        {"id": 4, "image_id": 99, "category_id": 1, "bbox": [1, 1, 4, 4]},
    ]
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": annotations, "categories": [{"id": 1, "name": "cat"}]}
    write_coco(tmp_path, doc, {"a.jpg": PHOTO})
    ds = read_dataset("coco", tmp_path, "x")
    assert [(a.source_id, a.type) for a in ds.items[0].annotations] == [("1", "bbox"), ("2", "polygon")]
    assert ds.warnings == [
        "2 annotation(s) name image_id 99, which no usable entry of 'images' has; skipped",
        "annotation 1 of a.jpg: 1 segmentation ring(s) of fewer than 3 points dropped; its box is kept",
        "annotation 2 of a.jpg: 1 segmentation ring(s) of fewer than 3 points dropped; the other rings are kept",
    ]
