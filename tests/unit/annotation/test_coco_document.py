"""COCO's ``instances.json`` written a page of annotations at a time (``CocoDocument``): the same text however
the annotations are paged, and read back whole by pycocotools and by ingest's own COCO reader, with empty
selections, images without annotations, RLE masks and keypoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from services.ingest.domain.datasets import read_dataset
from tests.unit.annotation.coco_documents import coco_document, coco_text

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

H, W = 40, 60
IMAGES = [
    {"id": "a", "file_name": "a.jpg", "width": W, "height": H},
    {"id": "empty", "file_name": "empty.jpg", "width": W, "height": H},  # no annotations at all
    {"id": "b", "file_name": "b.png", "width": W, "height": H},
]
LABELS = {
    "cat": {"name": "cat", "external_ids": {"ds": "17"}, "parent": "animal"},
    "person": {"name": "person", "external_ids": {}, "parent": None, "keypoints": ["nose", "left_eye"], "skeleton": [[1, 2]]},
    "tag": {"name": "indoor", "external_ids": {}, "parent": None},
}


def _mask() -> np.ndarray:
    """A mask with a hole and two parts: an RLE of several runs per column."""
    mask = np.zeros((H, W), np.uint8)
    mask[5:30, 10:40] = 1
    mask[12:20, 20:30] = 0
    mask[33:38, 50:58] = 1
    return mask


def _rle(mask: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(mask))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


ANNOTATIONS = [
    {"image_id": "a", "label_id": "cat", "type": "bbox", "bbox": [1, 2, 10, 20], "area": 200, "score": 0.75},
    {"image_id": "a", "label_id": "tag", "type": "classification"},  # no COCO form: not written, not numbered
    {"image_id": "b", "label_id": "cat", "type": "polygon", "bbox": [10, 5, 20, 20], "polygon": [[10, 5, 30, 5, 30, 25, 10, 25]], "area": 400},
    {"image_id": "b", "label_id": "cat", "type": "mask", "bbox": [10, 5, 48, 33], "rle": _rle(_mask()), "area": float(_mask().sum())},
    {"image_id": "a", "label_id": "person", "type": "keypoints", "keypoints": [[12, 8, 2], [20, 6, 1]]},
    {"image_id": "b", "label_id": "person", "type": "bbox", "bbox": [0, 0, 5, 5], "area": 25, "keypoints": [[1, 1, 2], [0, 0, 0]]},
]  # fmt: skip


@pytest.mark.parametrize("id_scheme,classes", [(None, None), ("ds", None), (None, ["person", "cat"])])
def test_the_text_is_the_same_however_the_annotations_are_paged(id_scheme, classes):
    whole = coco_text(IMAGES, ANNOTATIONS, LABELS, id_scheme, classes, page=len(ANNOTATIONS))
    for page in (1, 2, 3, 4):
        assert coco_text(IMAGES, ANNOTATIONS, LABELS, id_scheme, classes, page=page) == whole
    doc = json.loads(whole)
    assert [a["id"] for a in doc["annotations"]] == [1, 2, 3, 4, 5]  # numbered across pages, the classification left out


def test_pycocotools_reads_masks_polygons_boxes_and_keypoints_back():
    coco = COCO()
    coco.dataset = coco_document(IMAGES, ANNOTATIONS, LABELS, "ds")
    coco.createIndex()
    assert [c["id"] for c in coco.loadCats(coco.getCatIds())] == [17, 18]  # the scheme's id, then the next free one
    assert coco.loadCats([18])[0]["keypoints"] == ["nose", "left_eye"]
    box, polygon, mask, points, person = coco.loadAnns(coco.getAnnIds())
    assert coco.loadImgs([box["image_id"]])[0]["file_name"] == "a.jpg" and box["score"] == 0.75
    assert np.array_equal(coco.annToMask(mask), _mask()) and mask["iscrowd"] == 1
    square = np.zeros((H, W), np.uint8)
    square[5:25, 10:30] = 1
    assert (coco.annToMask(polygon) != square).sum() < 45  # the polygon's own pixels, edges as pycocotools rounds them
    assert points["keypoints"] == [12, 8, 2, 20, 6, 1] and points["bbox"] == [12, 6, 8, 2] and "segmentation" not in points
    assert person["keypoints"] == [1, 1, 2, 0, 0, 0] and person["num_keypoints"] == 1
    assert coco.getAnnIds(imgIds=[2]) == []  # the image without annotations is listed, with none


def test_an_empty_selection_is_still_a_document_coco_readers_take(tmp_path):
    for images in (IMAGES, []):
        text = coco_text(images, [], LABELS, None)
        assert json.loads(text) == {
            "info": {"description": "Exported by Image Corpus"},
            "images": [{"id": n, "file_name": i["file_name"], "width": W, "height": H} for n, i in enumerate(images, start=1)],
            "annotations": [], "categories": [],
        }  # fmt: skip
    coco = COCO()
    coco.dataset = coco_document(IMAGES, [ANNOTATIONS[1]], LABELS, None)  # only a classification: nothing to write
    coco.createIndex()
    assert coco.getAnnIds() == [] and len(coco.getImgIds()) == 3


def test_ingests_coco_reader_reads_the_document_back(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "images").mkdir()
    for image in IMAGES:
        (tmp_path / "images" / image["file_name"]).write_bytes(b"")  # the reader only needs them to be there
    (tmp_path / "annotations" / "instances.json").write_text(coco_text(IMAGES, ANNOTATIONS, LABELS, "ds", page=1))
    dataset = read_dataset("coco", tmp_path / "annotations" / "instances.json", "back")
    assert not dataset.warnings
    items = {item.path.name: item.annotations for item in dataset.items}
    assert set(items) == {"a.jpg", "empty.jpg", "b.png"} and items["empty.jpg"] == ()
    box, points = items["a.jpg"]
    assert (box.type, box.label, box.bbox) == ("bbox", "cat", [1, 2, 10, 20])  # (the reader keeps no scores)
    # keypoints without a box come back as the box of their labelled points, carrying them
    assert (points.label, points.bbox, points.keypoints) == ("person", [12, 6, 8, 2], [[12, 8, 2], [20, 6, 1]])
    polygon, mask, person = items["b.png"]
    assert polygon.polygon == [[10, 5, 30, 5, 30, 25, 10, 25]] and mask.rle == ANNOTATIONS[3]["rle"]
    assert person.type == "bbox" and person.keypoints == [[1, 1, 2], [0, 0, 0]]
    assert dataset.categories["cat"].external_id == "17" and dataset.categories["person"].keypoints == ["nose", "left_eye"]
