"""COCO instances JSON: boxes, polygons and RLE masks; categories (with supercategory) become labels."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from services.ingest.domain.datasets.model import Dataset, DatasetError, ImportItem
from shared.events import ImportedAnnotation, ImportedCategory
from shared.naming import normalize_name


def _index_file(path: Path) -> Path:
    if path.is_file():
        return path
    for candidate in (path / "annotations" / "instances.json", path / "instances.json", path / "annotations.json"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"No COCO JSON at {path}: give the JSON file or a folder with annotations/instances.json.")


def _image_path(index: Path, file_name: str) -> Path:
    for folder in (index.parent.parent / "images", index.parent / "images", index.parent):
        if (folder / file_name).is_file():
            return folder / file_name
    return index.parent.parent / "images" / file_name  # missing: reported when read


def compressed_rle(segmentation: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """COCO RLE in its compressed string form (pycocotools converts the uncompressed list form)."""
    counts = segmentation["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _annotation(raw: dict[str, Any], label: str, height: int, width: int) -> ImportedAnnotation:
    seg = raw.get("segmentation")
    common: dict[str, Any] = {
        "source_id": str(raw["id"]),
        "label": label,
        "bbox": [float(v) for v in raw["bbox"]] if raw.get("bbox") else None,
        "attributes": {"iscrowd": int(raw.get("iscrowd", 0)), "area": float(raw.get("area", 0.0))},
    }
    if isinstance(seg, dict) and "counts" in seg:
        return ImportedAnnotation(type="mask", rle=compressed_rle(seg, height, width), **common)
    if isinstance(seg, list) and seg:
        rings = [[float(v) for v in ring] for ring in seg if len(ring) >= 6]
        if rings:
            return ImportedAnnotation(type="polygon", polygon=rings, **common)
    return ImportedAnnotation(type="bbox", **common)


def read(path: Path, name: str) -> Dataset:
    index = _index_file(path)
    try:
        doc = json.loads(index.read_bytes())
        images, annotations, raw_categories = doc["images"], doc.get("annotations", []), doc.get("categories", [])
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{index} is not COCO instances JSON: {exc}.") from None
    licences = {lic.get("id"): lic.get("name") for lic in doc.get("licenses", []) if isinstance(lic, dict)}
    categories: dict[str, ImportedCategory] = {}
    by_id: dict[Any, str] = {}
    for cat in raw_categories:
        label = normalize_name(str(cat["name"]))
        parent = normalize_name(str(cat.get("supercategory") or "")) or None
        by_id[cat["id"]] = label
        categories[label] = ImportedCategory(name=label, external_id=str(cat["id"]), parent=parent if parent != label else None)
    for parent in {c.parent for c in categories.values() if c.parent} - set(categories):
        categories[parent] = ImportedCategory(name=parent)
    per_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in annotations:
        per_image[ann["image_id"]].append(ann)
    warnings: list[str] = []
    items: list[ImportItem] = []
    for image in sorted(images, key=lambda i: str(i["file_name"])):
        anns = []
        for raw in sorted(per_image.get(image["id"], []), key=lambda a: a["id"]):
            label = by_id.get(raw["category_id"])
            if label is None:
                warnings.append(f"annotation {raw['id']}: unknown category {raw['category_id']}")
                continue
            anns.append(_annotation(raw, label, int(image["height"]), int(image["width"])))
        items.append(
            ImportItem(
                path=_image_path(index, image["file_name"]),
                source_id=str(image["id"]),
                annotations=tuple(anns),
                licence=licences.get(image.get("license")),
                uri=image.get("coco_url") or image.get("flickr_url"),
            )
        )
    return Dataset(name=name, root=index.parent, items=items, categories=categories, warnings=warnings)
