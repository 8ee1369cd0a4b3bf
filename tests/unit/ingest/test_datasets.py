"""Dataset readers: the COCO sample as published, and YOLO / VOC / folder datasets made from it."""

import json

import pytest
from pycocotools import mask as mask_utils

from services.ingest.domain.datasets import DatasetError, in_pixels, read_dataset
from tests.photos import require_coco
from tests.unit.ingest.datasets import make_folder, make_voc, make_yolo


def test_coco_sample_reads_every_image_annotation_and_category():
    coco = require_coco()
    ds = read_dataset("coco", coco / "annotations" / "instances.json", "coco128")
    assert len(ds.items) == 128
    assert all(item.path.is_file() for item in ds.items)
    anns = [a for item in ds.items for a in item.annotations]
    assert len(anns) == 939
    assert sum(a.type == "polygon" for a in anns) == 929
    masks = [a for a in anns if a.type == "mask"]
    assert len(masks) == 10
    assert all(isinstance(m.rle["counts"], str) and len(m.bbox) == 4 for m in masks)
    # The compressed RLE holds the same pixels as the JSON's uncompressed runs (odd runs are ones).
    raw = {a["id"]: a for a in json.loads((coco / "annotations" / "instances.json").read_text())["annotations"]}
    for mask in masks:
        runs = raw[int(mask.source_id)]["segmentation"]["counts"]
        rle = {"size": mask.rle["size"], "counts": mask.rle["counts"].encode()}
        assert int(mask_utils.area(rle)) == sum(runs[1::2])
    assert ds.categories["person"].external_id == "1"
    assert ds.categories["bicycle"].parent == "vehicle"
    assert "vehicle" in ds.categories  # a supercategory becomes a parent label
    assert ds.items[0].licence and ds.items[0].uri.startswith("http://images.cocodataset.org/")


def test_coco_folder_path_finds_its_json():
    ds = read_dataset("coco", require_coco(), "coco128")
    assert len(ds.items) == 128


def test_yolo_boxes_come_back_in_pixels(tmp_path):
    doc = make_yolo(tmp_path)
    ds = read_dataset("yolo", tmp_path, "yolo")
    assert len(ds.items) == len(doc["images"])
    item = ds.items[0]
    image = doc["images"][0]
    expected = [a["bbox"] for a in doc["annotations"] if a["image_id"] == image["id"]]
    got = [in_pixels(a, image["width"], image["height"]).bbox for a in item.annotations]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=0.05)


def test_voc_boxes_match_the_coco_boxes(tmp_path):
    doc = make_voc(tmp_path)
    ds = read_dataset("voc", tmp_path, "voc")
    assert len(ds.items) == len(doc["images"])
    assert all(item.path.is_file() for item in ds.items)
    image = doc["images"][0]
    expected = [a["bbox"] for a in doc["annotations"] if a["image_id"] == image["id"]]
    got = [a.bbox for a in ds.items[0].annotations]
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=0.11)


def test_folder_parent_is_the_class(tmp_path):
    classes = make_folder(tmp_path)
    ds = read_dataset("folder", tmp_path, "pets")
    assert len(ds.items) == 4
    labels = {item.path.name: item.annotations[0].label for item in ds.items}
    assert {labels[n] for n in classes["Cats"]} == {"cats"}
    assert {labels[n] for n in classes["traffic_light"]} == {"traffic light"}
    assert all(item.annotations[0].type == "classification" for item in ds.items)


def test_unreadable_datasets_say_what_to_fix(tmp_path):
    with pytest.raises(DatasetError, match="classes.txt"):
        read_dataset("yolo", tmp_path, "x")
    with pytest.raises(DatasetError, match="No COCO JSON"):
        read_dataset("coco", tmp_path, "x")
    with pytest.raises(DatasetError, match="Unknown import kind"):
        read_dataset("csv", tmp_path, "x")
