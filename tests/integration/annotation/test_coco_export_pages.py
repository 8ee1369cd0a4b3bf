"""The COCO export through the service, its annotations read and written a page at a time (pages of two
here, so every export below spans several): images without annotations, RLE masks, keypoints, and only the
classes asked for, read back whole by pycocotools."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from services.annotation import exports
from tests.conftest import RUN_ID
from tests.integration.annotation.test_export_untrusted import _annotate, _export, _stored

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]


def _read(archive) -> COCO:
    coco = COCO()
    coco.dataset = json.loads(archive.read("annotations/instances.json"))
    coco.createIndex()
    return coco


def holed_mask() -> tuple[np.ndarray, dict]:
    """A mask with a hole on chelsea.png (451 × 300), and its RLE."""
    mask = np.zeros((300, 451), np.uint8)
    mask[40:120, 60:200] = 1
    mask[70:90, 100:150] = 0  # a hole
    encoded = coco_mask.encode(np.asfortranarray(mask))
    return mask, {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}


async def test_a_coco_export_in_pages_holds_every_object_and_every_image(annotation_client, mongo_db, blob_store, monkeypatch):
    monkeypatch.setattr(exports, "PAGE", 2)
    tag = f"pages {RUN_ID}"
    shapes = await _stored(mongo_db, blob_store, "chelsea.png", "probe_pages_shapes.png")
    bare = await _stored(mongo_db, blob_store, "coffee.png", "probe_pages_bare.png")
    points = await _stored(mongo_db, blob_store, "astronaut.png", "probe_pages_points.png")
    mask, rle = holed_mask()
    await _annotate(annotation_client, shapes, type="bbox", label=f"cat {tag}", bbox=[1, 2, 30, 40])
    await _annotate(annotation_client, shapes, type="classification", label=f"indoor {tag}")
    await _annotate(annotation_client, shapes, type="mask", label=f"cat {tag}", rle=rle)
    await _annotate(annotation_client, shapes, type="polygon", label=f"dog {tag}", polygon=[[10, 10, 90, 10, 90, 60]])
    await _annotate(annotation_client, points, type="keypoints", label=f"person {tag}", keypoints=[[50, 60, 2], [70, 20, 1]])
    await _annotate(annotation_client, points, type="bbox", label=f"dog {tag}", bbox=[5, 5, 10, 10])

    coco = _read(await _export(annotation_client, format="coco", image_ids=[shapes, bare, points]))
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    assert sorted(names.values()) == [f"cat {tag}", f"dog {tag}", f"person {tag}"]  # no category for the classification
    files = {i["id"]: i["file_name"] for i in coco.dataset["images"]}
    assert list(files.values()) == ["probe_pages_shapes.png", "probe_pages_bare.png", "probe_pages_points.png"]
    assert [a["id"] for a in coco.dataset["annotations"]] == [1, 2, 3, 4, 5]  # numbered on across pages
    objects = {(files[a["image_id"]], names[a["category_id"]], "segmentation" in a) for a in coco.dataset["annotations"]}
    assert objects == {
        ("probe_pages_shapes.png", f"cat {tag}", False), ("probe_pages_shapes.png", f"cat {tag}", True),
        ("probe_pages_shapes.png", f"dog {tag}", True), ("probe_pages_points.png", f"person {tag}", False),
        ("probe_pages_points.png", f"dog {tag}", False),
    }  # fmt: skip
    [crowd] = [a for a in coco.dataset["annotations"] if a.get("iscrowd")]
    assert np.array_equal(coco.annToMask(crowd), mask)
    [person] = [a for a in coco.dataset["annotations"] if "keypoints" in a]
    assert person["keypoints"] == [50, 60, 2, 70, 20, 1] and person["bbox"] == [50, 20, 20, 40]

    only = _read(await _export(annotation_client, format="coco", image_ids=[shapes, bare, points], classes=[f"dog {tag}"]))
    assert [(c["id"], c["name"]) for c in only.dataset["categories"]] == [(1, f"dog {tag}")]
    assert len(only.dataset["annotations"]) == 2 and len(only.dataset["images"]) == 3

    nothing = _read(await _export(annotation_client, format="coco", image_ids=[bare]))
    assert nothing.dataset["annotations"] == [] and nothing.dataset["categories"] == [] and len(nothing.getImgIds()) == 1
