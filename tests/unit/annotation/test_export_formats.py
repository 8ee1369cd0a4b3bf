"""Export formats as pure functions: category ids from external ids, YOLO normalisation, VOC boxes."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from services.annotation.domain import export_formats

IMAGES = [{"id": "i1", "file_name": "a.jpg", "width": 200, "height": 100}]
LABELS = {
    "l1": {"name": "cat", "external_ids": {"coco": "17"}, "parent": "animal"},
    "l2": {"name": "dog", "external_ids": {}, "parent": None},
}
ANNOTATIONS = [
    {"image_id": "i1", "label_id": "l1", "type": "bbox", "bbox": [10, 20, 50, 40], "area": 2000},
    {"image_id": "i1", "label_id": "l2", "type": "polygon", "bbox": [0, 0, 10, 10], "polygon": [[0, 0, 10, 0, 10, 10]], "area": 50},
    {"image_id": "i1", "label_id": "l2", "type": "classification", "bbox": None},
]


def test_coco_keeps_external_category_ids_and_numbers_the_rest():
    doc = export_formats.coco(IMAGES, ANNOTATIONS, LABELS, "coco")
    assert doc["categories"] == [{"id": 17, "name": "cat", "supercategory": "animal"}, {"id": 18, "name": "dog", "supercategory": ""}]
    assert [a["category_id"] for a in doc["annotations"]] == [17, 18]  # the classification has no COCO form
    assert doc["annotations"][1]["segmentation"] == [[0, 0, 10, 0, 10, 10]] and doc["annotations"][0]["iscrowd"] == 0


def test_yolo_lines_are_normalised_centres():
    files = export_formats.yolo(IMAGES, ANNOTATIONS, LABELS)
    assert files["classes.txt"] == "cat\ndog\n"
    assert files["labels/a.txt"].splitlines()[0] == "0 0.175000 0.400000 0.250000 0.400000"


def test_voc_boxes_are_corners():
    xml = ET.fromstring(export_formats.voc(IMAGES, ANNOTATIONS, LABELS)["Annotations/a.xml"])
    box = xml.find("object/bndbox")
    assert [box.find(t).text for t in ("xmin", "ymin", "xmax", "ymax")] == ["10", "20", "60", "60"]
    assert len(xml.findall("object")) == 2
