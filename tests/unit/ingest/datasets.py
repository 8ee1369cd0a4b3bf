"""Building small YOLO, VOC and folder datasets from the real COCO sample (in a temporary folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.photos import require_coco


def coco_subset(count: int = 5) -> tuple[Path, dict]:
    coco = require_coco()
    doc = json.loads((coco / "annotations" / "instances.json").read_text())
    images = sorted(doc["images"], key=lambda i: i["file_name"])[:count]
    ids = {i["id"] for i in images}
    anns = [a for a in doc["annotations"] if a["image_id"] in ids]
    return coco, {"images": images, "annotations": anns, "categories": doc["categories"]}


def make_yolo(root: Path, count: int = 5) -> dict:
    coco, doc = coco_subset(count)
    names = [c["name"] for c in doc["categories"]]
    index = {c["id"]: i for i, c in enumerate(doc["categories"])}
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    for image in doc["images"]:
        shutil.copy(coco / "images" / image["file_name"], root / "images" / "train" / image["file_name"])
        lines = []
        for a in doc["annotations"]:
            if a["image_id"] == image["id"]:
                x, y, w, h = a["bbox"]
                W, H = image["width"], image["height"]
                lines.append(f"{index[a['category_id']]} {(x + w / 2) / W:.6f} {(y + h / 2) / H:.6f} {w / W:.6f} {h / H:.6f}")
        (root / "labels" / "train" / Path(image["file_name"]).with_suffix(".txt")).write_text("\n".join(lines))
    return doc


def make_voc(root: Path, count: int = 5) -> dict:
    coco, doc = coco_subset(count)
    names = {c["id"]: c["name"] for c in doc["categories"]}
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir(parents=True)
    for image in doc["images"]:
        shutil.copy(coco / "images" / image["file_name"], root / "JPEGImages" / image["file_name"])
        objects = ""
        for a in doc["annotations"]:
            if a["image_id"] == image["id"]:
                x, y, w, h = a["bbox"]
                objects += (
                    f"<object><name>{names[a['category_id']]}</name><difficult>0</difficult><bndbox>"
                    f"<xmin>{x + 1:.1f}</xmin><ymin>{y + 1:.1f}</ymin><xmax>{x + w:.1f}</xmax><ymax>{y + h:.1f}</ymax>"
                    "</bndbox></object>"
                )
        xml = f"<annotation><filename>{image['file_name']}</filename><size><width>{image['width']}</width><height>{image['height']}</height></size>{objects}</annotation>"
        (root / "Annotations" / Path(image["file_name"]).with_suffix(".xml")).write_text(xml)
    return doc


def make_folder(root: Path, per_class: int = 2) -> dict[str, list[str]]:
    coco = require_coco()
    files = sorted((coco / "images").iterdir())
    classes = {"Cats": files[:per_class], "traffic_light": files[per_class : 2 * per_class]}
    for name, paths in classes.items():
        (root / name).mkdir(parents=True)
        for path in paths:
            shutil.copy(path, root / name / path.name)
    return {name: [p.name for p in paths] for name, paths in classes.items()}


def write_coco(root: Path, doc: dict, images: dict[str, bytes] | None = None) -> Path:
    """A COCO dataset as people lay it out (``annotations/instances.json``, ``images/``); returns its JSON."""
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    for name, data in (images or {}).items():
        (root / "images" / name).write_bytes(data)
    index = root / "annotations" / "instances.json"
    index.write_text(json.dumps(doc))  # float("nan") is written as NaN, which Python's JSON reads back
    return index


def write_yolo(root: Path, labels: dict[str, str | bytes], images: dict[str, bytes], *, classes: str = "cat\ndog\n") -> Path:
    """A YOLO dataset: ``images/<name>``, ``labels/<stem>.txt`` (text or raw bytes) and classes.txt."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text(classes)
    for name, data in images.items():
        (root / "images" / name).write_bytes(data)
    for stem, text in labels.items():
        (root / "labels" / f"{stem}.txt").write_bytes(text if isinstance(text, bytes) else text.encode())
    return root


def voc_object(name: str, box: tuple, extra: str = "") -> str:
    xmin, ymin, xmax, ymax = box
    return f"<object><name>{name}</name>{extra}<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"


def write_voc(root: Path, xmls: dict[str, tuple[str, str]], images: dict[str, bytes]) -> Path:
    """A Pascal VOC dataset: ``Annotations/<stem>.xml`` naming (filename, objects), ``JPEGImages/``."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for name, data in images.items():
        (root / "JPEGImages" / name).write_bytes(data)
    for stem, (filename, objects) in xmls.items():
        (root / "Annotations" / f"{stem}.xml").write_text(f"<annotation><filename>{filename}</filename>{objects}</annotation>")
    return root
