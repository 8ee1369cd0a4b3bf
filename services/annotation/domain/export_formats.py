"""COCO, YOLO and Pascal VOC documents from annotations: pure functions, no I/O.

Inputs are plain dicts: ``images`` ({id, file_name, width, height}),
``annotations`` (stored annotation documents) and ``labels`` (id → {name,
parent, external_ids}). Category ids come from the labels' external ids
under ``id_scheme`` (e.g. the dataset name an import used) when they are
integers, so a COCO import exports with its own category ids; other labels
get the next free numbers.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any
from xml.etree import ElementTree as ET

GEOMETRIC = ("bbox", "polygon", "mask", "keypoints")


def category_ids(label_ids: list[str], labels: dict[str, dict], id_scheme: str | None) -> dict[str, int]:
    ids: dict[str, int] = {}
    for label_id in label_ids:
        external = labels[label_id].get("external_ids", {}).get(id_scheme or "", "")
        if str(external).isdigit() and int(external) not in ids.values():
            ids[label_id] = int(external)
    next_id = max(ids.values(), default=0) + 1
    for label_id in sorted(label_ids, key=lambda i: labels[i]["name"]):
        if label_id not in ids:
            ids[label_id], next_id = next_id, next_id + 1
    return ids


def coco(images: list[dict], annotations: list[dict], labels: dict[str, dict], id_scheme: str | None) -> dict[str, Any]:
    used = sorted({a["label_id"] for a in annotations if a["type"] in GEOMETRIC})
    cats = category_ids(used, labels, id_scheme)
    image_ids = {image["id"]: n for n, image in enumerate(images, start=1)}
    out = []
    for n, a in enumerate((a for a in annotations if a["type"] in GEOMETRIC), start=1):
        entry: dict[str, Any] = {
            "id": n, "image_id": image_ids[a["image_id"]], "category_id": cats[a["label_id"]],
            "bbox": a.get("bbox") or [0, 0, 0, 0], "area": a.get("area") or 0, "iscrowd": int(a["type"] == "mask"),
            "segmentation": a["rle"] if a["type"] == "mask" else a.get("polygon") or [],
        }  # fmt: skip
        if a["type"] == "keypoints":
            entry["keypoints"] = [v for point in a["keypoints"] for v in point]
            entry["num_keypoints"] = sum(1 for point in a["keypoints"] if point[2] > 0)
        if a.get("score") is not None:
            entry["score"] = a["score"]
        out.append(entry)
    categories = [
        {"id": cats[i], "name": labels[i]["name"], "supercategory": labels[i].get("parent") or ""} for i in used
    ]
    return {
        "info": {"description": "Exported by Image Corpus"},
        "images": [{"id": image_ids[i["id"]], "file_name": i["file_name"], "width": i["width"], "height": i["height"]} for i in images],
        "annotations": out,
        "categories": sorted(categories, key=lambda c: c["id"]),
    }


def yolo(images: list[dict], annotations: list[dict], labels: dict[str, dict]) -> dict[str, str]:
    """``classes.txt``, ``data.yaml`` and one ``labels/<stem>.txt`` per image: ``class cx cy w h``, normalised."""
    boxed = [a for a in annotations if a.get("bbox")]
    names = sorted({labels[a["label_id"]]["name"] for a in boxed})
    index = {name: n for n, name in enumerate(names)}
    files = {"classes.txt": "".join(f"{name}\n" for name in names)}
    files["data.yaml"] = "path: .\ntrain: images\nval: images\nnames:\n" + "".join(
        f"  {n}: {json.dumps(name)}\n" for n, name in enumerate(names)
    )
    by_image: dict[str, list[str]] = {image["id"]: [] for image in images}
    sizes = {image["id"]: (image["width"], image["height"]) for image in images}
    for a in boxed:
        (x, y, w, h), (width, height) = a["bbox"], sizes[a["image_id"]]
        cls = index[labels[a["label_id"]]["name"]]
        by_image[a["image_id"]].append(f"{cls} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}")
    for image in images:
        files[f"labels/{PurePosixPath(image['file_name']).stem}.txt"] = "".join(f"{line}\n" for line in by_image[image["id"]])
    return files


def voc(images: list[dict], annotations: list[dict], labels: dict[str, dict]) -> dict[str, str]:
    """One ``Annotations/<stem>.xml`` per image, boxes as xmin/ymin/xmax/ymax pixels."""
    files = {}
    for image in images:
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "JPEGImages"
        ET.SubElement(root, "filename").text = image["file_name"]
        size = ET.SubElement(root, "size")
        for tag, value in (("width", image["width"]), ("height", image["height"]), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        for a in (a for a in annotations if a["image_id"] == image["id"] and a.get("bbox")):
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = labels[a["label_id"]]["name"]
            ET.SubElement(obj, "difficult").text = "0"
            box = ET.SubElement(obj, "bndbox")
            x, y, w, h = a["bbox"]
            for tag, value in (("xmin", x), ("ymin", y), ("xmax", x + w), ("ymax", y + h)):
                ET.SubElement(box, tag).text = str(round(value))
        ET.indent(root)
        files[f"Annotations/{PurePosixPath(image['file_name']).stem}.xml"] = ET.tostring(root, encoding="unicode")
    return files
