"""``annotations.imported`` events built from the real COCO sample, as ingest's dataset import sends them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pycocotools import mask as coco_mask

from shared.clients.blobs import original_key
from shared.events import AnnotationsImported, ImportedAnnotation, ImportedCategory
from tests.integration.annotation.conftest import add_image


def load(coco: Path) -> dict:
    return json.loads((coco / "annotations" / "instances.json").read_text())


def imported_annotation(a: dict, categories: dict[int, dict], height: int, width: int) -> ImportedAnnotation:
    label = categories[a["category_id"]]["name"]
    if a["iscrowd"]:
        rle = coco_mask.frPyObjects(a["segmentation"], height, width)
        return ImportedAnnotation(
            source_id=str(a["id"]), type="mask", label=label, bbox=a["bbox"],
            rle={"size": rle["size"], "counts": rle["counts"].decode()},
        )  # fmt: skip
    return ImportedAnnotation(source_id=str(a["id"]), type="polygon", label=label, bbox=a["bbox"], polygon=a["segmentation"])


async def place_images(coco: Path, data: dict, db, blobs) -> dict[int, str]:
    """Store every photo in MinIO and its document in ``images``, as ingest would; COCO id → image id."""
    ids = {}
    for image in data["images"]:
        raw = (coco / "images" / image["file_name"]).read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        await blobs.put(original_key(sha), raw, "image/jpeg")
        ids[image["id"]] = await add_image(db, image["width"], image["height"], data=raw, filename=image["file_name"])
        assert ids[image["id"]] == sha
    return ids


def events(data: dict, image_ids: dict[int, str], dataset: str) -> list[AnnotationsImported]:
    categories = {c["id"]: c for c in data["categories"]}
    cats = [ImportedCategory(name=c["name"], external_id=str(c["id"]), parent=c["supercategory"]) for c in data["categories"]]
    by_image: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    out = []
    for image in data["images"]:
        out.append(
            AnnotationsImported(
                import_id=f"{dataset}-import", dataset=dataset, image_id=image_ids[image["id"]],
                image_width=image["width"], image_height=image["height"], categories=cats,
                annotations=[imported_annotation(a, categories, image["height"], image["width"]) for a in by_image.get(image["id"], [])],
            )  # fmt: skip
        )
    return out
