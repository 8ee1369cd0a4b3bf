"""COCO instances JSON: boxes, polygons, RLE masks and keypoints; categories (with supercategory, and
the keypoint schema of a person_keypoints file) become labels.

What the JSON says is not trusted: a file that is not instances JSON, or a category the labels cannot
be made from, is a :class:`DatasetError` (the job fails, saying what to fix); one bad image entry or
annotation is a warning and is skipped, and the rest of the dataset is read.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils
from pydantic import ValidationError

from services.ingest.domain.datasets.model import Dataset, DatasetError, ImportItem, finite_numbers, first_file
from shared.events import ImportedAnnotation, ImportedCategory
from shared.naming import normalize_name

# What converting one malformed annotation can raise: a missing key, a value of the wrong type, or
# pycocotools refusing it. Caught per annotation, so it costs that annotation only.
ANNOTATION_ERRORS = (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError)


def _index_file(path: Path) -> Path:
    if path.is_file():
        return path
    for candidate in (path / "annotations" / "instances.json", path / "instances.json", path / "annotations.json"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"No COCO JSON at {path}: give the JSON file or a folder with annotations/instances.json.")


def _home(index: Path) -> Path:
    """The dataset's folder, which its images must lie in: the one above ``annotations/`` when the JSON
    is there (``coco128/annotations/instances.json`` with ``coco128/images/``), else the JSON's own."""
    return index.parent.parent if index.parent.name == "annotations" else index.parent


def _split(index: Path) -> str | None:
    """The split a JSON is named for: ``instances_val2017.json`` → ``val2017`` (COCO 2017's own layout keeps
    those images in ``val2017/`` beside ``annotations/``)."""
    _, underscore, split = index.stem.rpartition("_")
    return split if underscore and split else None


def _image_folders(home: Path, index: Path) -> list[Path]:
    """Where a COCO dataset's images may be, in the order they are looked for."""
    folders = [home / "images", index.parent / "images", index.parent]
    if split := _split(index):
        folders += [home / split, home / "images" / split]
    return list(dict.fromkeys(folders))


def _is_id(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _order(value: int | float | str) -> tuple[bool, Any]:
    """A sort key for ids that may mix numbers and strings (numbers first, in numeric order)."""
    return isinstance(value, str), value


def compressed_rle(segmentation: dict[str, Any]) -> dict[str, Any]:
    """COCO RLE in its compressed string form (pycocotools converts the uncompressed list form).
    ValueError when the RLE is malformed, so pycocotools never sees what it would crash on."""
    counts, size = segmentation["counts"], segmentation.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise ValueError("the mask's 'size' must be [height, width] (two whole numbers)")
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**63 for c in counts):
            raise ValueError("the mask's 'counts' must be whole numbers ≥ 0 (run lengths)")
        rle = mask_utils.frPyObjects(segmentation, size[0], size[1])
    elif isinstance(counts, str):
        rle = {"size": size, "counts": counts.encode()}
    else:
        raise ValueError("the mask's 'counts' must be a list of run lengths or an RLE string")
    try:
        text = rle["counts"].decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("the mask's 'counts' string is not COCO RLE (it is not ASCII)") from None
    return {"size": [int(v) for v in rle["size"]], "counts": text}


def _keypoints(raw: dict[str, Any]) -> list[list[float]] | None:
    """COCO's flat ``[x1, y1, v1, x2, ...]`` as ``[[x, y, v], ...]``; None when no point is labelled (COCO's
    people without keypoints hold zeros)."""
    flat = raw.get("keypoints")
    if flat is None:
        return None
    numbers = finite_numbers(flat, "'keypoints'")
    if len(numbers) % 3:
        raise ValueError(f"'keypoints' holds {len(numbers)} numbers, not [x, y, visibility] triples")
    points = [numbers[i : i + 3] for i in range(0, len(numbers), 3)]
    return points if any(v > 0 for _, _, v in points) else None


def _short_rings(raw: dict[str, Any]) -> int:
    """How many polygon rings of the annotation have fewer than 3 points (6 numbers): not a shape."""
    seg = raw.get("segmentation")
    return sum(isinstance(ring, list) and len(ring) < 6 for ring in seg) if isinstance(seg, list) else 0


def _box(values: Any) -> list[float]:
    """COCO's ``[x, y, width, height]``; ValueError (a warning, the annotation skipped) for any other length."""
    box = finite_numbers(values, "'bbox'")
    if len(box) != 4:
        raise ValueError(f"'bbox' holds {len(box)} numbers, not [x, y, width, height]")
    return box


def _annotation(raw: dict[str, Any], label: str) -> ImportedAnnotation:
    """One COCO object: a mask (RLE), a polygon, else a box (or keypoints alone, when it has no box), with
    its keypoints, if any are labelled, on the same annotation."""
    seg = raw.get("segmentation")
    common: dict[str, Any] = {
        "source_id": str(raw["id"]),
        "label": label,
        "bbox": _box(raw["bbox"]) if raw.get("bbox") else None,
        "keypoints": _keypoints(raw),
        "attributes": {"iscrowd": int(raw.get("iscrowd") or 0), "area": finite_numbers([raw.get("area") or 0.0], "'area'")[0]},
    }
    if isinstance(seg, dict) and "counts" in seg:
        return ImportedAnnotation(type="mask", rle=compressed_rle(seg), **common)
    if isinstance(seg, list) and seg:
        rings = [finite_numbers(ring, "'segmentation' ring") for ring in seg if not isinstance(ring, list) or len(ring) >= 6]
        if rings:
            return ImportedAnnotation(type="polygon", polygon=rings, **common)
    return ImportedAnnotation(type="bbox" if common["bbox"] or not common["keypoints"] else "keypoints", **common)


def _why(exc: Exception) -> str:
    return f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__


def _document(index: Path) -> dict[str, Any]:
    try:
        doc = json.loads(index.read_bytes())
    except ValueError as exc:  # not JSON, or not UTF-8
        raise DatasetError(f"{index} is not COCO instances JSON: {exc}.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DatasetError(f"{index} is not COCO instances JSON: it needs an 'images' list.")
    for key in ("annotations", "categories", "licenses"):
        if not isinstance(doc.get(key, []), list):
            raise DatasetError(f"{index} is not COCO instances JSON: its {key!r} is not a list.")
    return doc


def _categories(index: Path, raw_categories: list[Any], warnings: list[str]) -> tuple[dict[str, ImportedCategory], dict[Any, str]]:
    """The labels (supercategories become parents) and each category id's label. A category that cannot
    become a label fails the dataset: every annotation of it would otherwise be lost without a word."""
    categories: dict[str, ImportedCategory] = {}
    by_id: dict[Any, str] = {}
    for number, cat in enumerate(raw_categories):
        where = f"{index}: category #{number}"
        if not isinstance(cat, dict):
            raise DatasetError(f"{where} is not an object with 'id' and 'name'.")
        if not _is_id(cat.get("name")):
            raise DatasetError(f"{where} (id {cat.get('id')!r}) has no 'name'.")
        if not _is_id(cat.get("id")):
            raise DatasetError(f"{where} ({cat['name']!r}) has no usable 'id' (a number or a string).")
        label = normalize_name(str(cat["name"]))
        parent = normalize_name(str(cat.get("supercategory") or "")) or None
        by_id[cat["id"]] = label
        common = {"name": label, "external_id": str(cat["id"]), "parent": parent if parent != label else None}
        try:
            categories[label] = ImportedCategory(**common, keypoints=cat.get("keypoints") or None, skeleton=cat.get("skeleton") or None)
        except ValidationError as exc:  # the label is still made, with its annotations' keypoints, but unnamed
            warnings.append(f"{where} ({cat['name']!r}): keypoint schema not kept: {exc.errors()[0]['msg']}")
            categories[label] = ImportedCategory(**common)
    for parent in {c.parent for c in categories.values() if c.parent} - set(categories):
        categories[parent] = ImportedCategory(name=parent)
    return categories, by_id


def _licences(doc: dict[str, Any]) -> dict[Any, str | None]:
    """Licence names by id; an entry without a usable id is ignored (its images get the job's licence)."""
    return {
        lic["id"]: lic.get("name") if isinstance(lic.get("name"), str) else None
        for lic in doc.get("licenses", [])
        if isinstance(lic, dict) and _is_id(lic.get("id"))
    }


def _per_image(annotations: list[Any], warnings: list[str]) -> dict[Any, list[dict[str, Any]]]:
    per_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for number, ann in enumerate(annotations):
        if not isinstance(ann, dict) or not _is_id(ann.get("id")) or not _is_id(ann.get("image_id")):
            warnings.append(f"annotation #{number}: no usable 'id' and 'image_id'; skipped")
            continue
        per_image[ann["image_id"]].append(ann)
    return per_image


def _image_annotations(image: dict[str, Any], raws: list[dict[str, Any]], by_id: dict[Any, str], warnings: list[str]) -> tuple[ImportedAnnotation, ...]:
    anns = []
    for raw in sorted(raws, key=lambda a: _order(a["id"])):
        category = raw.get("category_id")
        label = by_id.get(category) if _is_id(category) else None
        if label is None:
            warnings.append(f"annotation {raw['id']}: unknown category {category}")
            continue
        try:
            annotation = _annotation(raw, label)
        except ANNOTATION_ERRORS as exc:
            warnings.append(f"annotation {raw['id']} of {image['file_name']}: {_why(exc)}; skipped")
            continue
        if short := _short_rings(raw):
            kept = "its box is kept" if annotation.type != "polygon" else "the other rings are kept"
            warnings.append(f"annotation {raw['id']} of {image['file_name']}: {short} segmentation ring(s) of fewer than 3 points dropped; {kept}")
        anns.append(annotation)
    return tuple(anns)


def _orphans(per_image: dict[Any, list[dict[str, Any]]], images: list[dict[str, Any]], warnings: list[str]) -> None:
    """Warn of annotations whose ``image_id`` no image entry has: they cannot be imported."""
    known = {image["id"] for image in images}
    for image_id in sorted((i for i in per_image if i not in known), key=_order):
        count = len(per_image[image_id])
        warnings.append(f"{count} annotation(s) name image_id {image_id!r}, which no usable entry of 'images' has; skipped")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def read(path: Path, name: str) -> Dataset:
    index = _index_file(path)
    doc = _document(index)
    warnings: list[str] = []
    categories, by_id = _categories(index, doc.get("categories", []), warnings)
    licences = _licences(doc)
    per_image = _per_image(doc.get("annotations", []), warnings)
    images = []
    for number, image in enumerate(doc["images"]):
        if isinstance(image, dict) and _is_id(image.get("id")) and _text(image.get("file_name")):
            images.append(image)
        else:
            warnings.append(f"image #{number}: no usable 'id' and 'file_name'; skipped")
    _orphans(per_image, images, warnings)
    home = _home(index)
    folders = _image_folders(home, index)
    items: list[ImportItem] = []
    for image in sorted(images, key=lambda i: i["file_name"]):
        licence = image.get("license")
        path, looked_at = first_file(folders, image["file_name"])
        items.append(
            ImportItem(
                path=path,
                looked_at=looked_at,
                source_id=str(image["id"]),
                annotations=_image_annotations(image, per_image.get(image["id"], []), by_id, warnings),
                licence=licences.get(licence) if _is_id(licence) else None,
                uri=_text(image.get("coco_url")) or _text(image.get("flickr_url")),
            )
        )
    return Dataset(name=name, root=index.parent, items=items, categories=categories, warnings=warnings, boundary=home)
