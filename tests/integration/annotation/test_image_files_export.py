"""YOLO, YOLO segmentation, VOC and ImageFolder exports through the service, their annotations read a page at
a time (pages of two here, so an image's annotations span pages) and each image's files written as its page
comes: every annotation file is byte for byte what the writers make at once from all the selection's
annotations (as the export made them before), for every image, with or without annotations."""

from __future__ import annotations

import pytest

from services.annotation import exports
from services.annotation.adapters.annotations import HIDE_PENDING
from services.annotation.deps import DEPS
from services.annotation.domain import export_formats
from tests.conftest import RUN_ID
from tests.integration.annotation.test_coco_export_pages import holed_mask
from tests.integration.annotation.test_export_untrusted import _annotate, _export, _stored

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

async def _at_once(deps, fmt: str, image_ids: list[str], classes: list[str] | None) -> tuple[dict, dict[str, list[str]]]:
    """The files made from every annotation of the images at once, as the export made them before it paged."""
    images = await exports._images(deps, image_ids)
    found = deps.annotations.annotations.find({"image_id": {"$in": image_ids}, "deleted": False}, HIDE_PENDING)
    annotations = await found.sort("_id", 1).to_list()
    labels = await exports._labels(deps, {a["label_id"] for a in annotations})
    if classes is not None:
        annotations = [a for a in annotations if labels[a["label_id"]]["name"] in classes]
    if fmt == "imagefolder":
        return export_formats.image_folder(images, annotations, labels)
    folder = exports.FOLDERS[fmt]
    return exports.FILES[fmt].at_once(images, annotations, labels, classes), {i["id"]: [f"{folder}/{i['file_name']}"] for i in images}


@pytest.mark.parametrize("fmt", ["yolo", "yolo-seg", "voc", "imagefolder"])
async def test_paged_files_are_the_files_made_at_once(fmt, annotation_client, mongo_db, blob_store, monkeypatch):
    monkeypatch.setattr(exports, "PAGE", 2)
    tag = f"paged {fmt.replace('-', '')} {RUN_ID}"  # as names are normalised
    shapes = await _stored(mongo_db, blob_store, "chelsea.png", f"probe_paged_shapes_{fmt}.png")
    bare = await _stored(mongo_db, blob_store, "coffee.png", f"probe_paged_bare_{fmt}.png")
    boxes = await _stored(mongo_db, blob_store, "astronaut.png", f"probe_paged_boxes_{fmt}.png")
    _, rle = holed_mask()
    await _annotate(annotation_client, boxes, type="bbox", label=f"dog {tag}", bbox=[5, 5, 10, 10])
    await _annotate(annotation_client, shapes, type="bbox", label=f"cat {tag}", bbox=[1, 2, 30, 40])
    await _annotate(annotation_client, shapes, type="classification", label=f"indoor {tag}")
    await _annotate(annotation_client, shapes, type="mask", label=f"cat {tag}", rle=rle)
    await _annotate(annotation_client, shapes, type="polygon", label=f"dog {tag}", polygon=[[10, 10, 90, 10, 90, 60]])
    await _annotate(annotation_client, boxes, type="bbox", label=f"cat {tag}", bbox=[50, 60, 20, 30])
    await _annotate(annotation_client, boxes, type="classification", label=f"outdoor {tag}")
    await _annotate(annotation_client, bare, type="keypoints", label=f"dog {tag}", keypoints=[[5, 6, 2]])  # no box: no object here
    await _annotate(annotation_client, bare, type="classification", label=f"bird {tag}")  # a class without objects

    image_ids = [shapes, bare, boxes]
    for classes in (None, [f"dog {tag}", f"outdoor {tag}", f"bird {tag}"] if fmt != "imagefolder" else [f"outdoor {tag}"]):
        archive = await _export(annotation_client, format=fmt, image_ids=image_ids, **({"classes": classes} if classes else {}))
        files, paths = await _at_once(annotation_client.server.app[DEPS], fmt, image_ids, classes)
        assert len(files) >= 2 and any(files.values())
        photos = {member for members in paths.values() for member in members}
        assert set(archive.namelist()) == photos | set(files)
        assert {name: archive.read(name) for name in files} == {
            name: content if isinstance(content, bytes) else content.encode() for name, content in files.items()
        }
