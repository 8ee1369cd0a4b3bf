"""Pascal VOC: one XML per image (``Annotations/*.xml``), images in ``JPEGImages/``.

VOC boxes are 1-based inclusive ``xmin ymin xmax ymax``; they become COCO-order
``[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]`` (the Detectron convention).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from services.ingest.domain.datasets.model import Dataset, DatasetError, ImportItem
from shared.events import ImportedAnnotation, ImportedCategory
from shared.naming import normalize_name


def _image_for(root: Path, xml_path: Path, filename: str) -> Path:
    for folder in (root / "JPEGImages", root / "images", xml_path.parent):
        if (folder / filename).is_file():
            return folder / filename
    return root / "JPEGImages" / filename


def _box(obj: ET.Element) -> list[float]:
    box = obj.find("bndbox")
    if box is None:
        raise ValueError("an object without bndbox")
    xmin, ymin, xmax, ymax = (float(box.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax"))
    if not (xmax >= xmin and ymax >= ymin):
        raise ValueError(f"an empty or inverted box ({xmin}, {ymin}, {xmax}, {ymax})")
    return [xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]


def read(root: Path, name: str) -> Dataset:
    folder = root / "Annotations" if (root / "Annotations").is_dir() else root
    if not folder.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    xml_files = sorted(folder.rglob("*.xml"))
    if not xml_files:
        raise DatasetError(f"No Pascal VOC XML files under {folder}.")
    categories: dict[str, ImportedCategory] = {}
    warnings: list[str] = []
    items: list[ImportItem] = []
    for xml_path in xml_files:
        rel = xml_path.relative_to(root).as_posix()
        try:
            tree = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            warnings.append(f"{rel}: not XML ({exc})")
            continue
        filename = (tree.findtext("filename") or xml_path.with_suffix(".jpg").name).strip()
        anns: list[ImportedAnnotation] = []
        for number, obj in enumerate(tree.iter("object")):
            label = normalize_name(obj.findtext("name") or "")
            try:
                if not label:
                    raise ValueError("an object without a name")
                bbox = _box(obj)
            except ValueError as exc:
                warnings.append(f"{rel} object {number}: {exc}")
                continue
            categories.setdefault(label, ImportedCategory(name=label))
            attributes = {k: int(obj.findtext(k) or 0) for k in ("difficult", "truncated", "occluded") if obj.find(k) is not None}
            if obj.findtext("pose"):
                attributes["pose"] = obj.findtext("pose")
            anns.append(ImportedAnnotation(source_id=f"{rel}#{number}", type="bbox", label=label, bbox=bbox, attributes=attributes))
        items.append(ImportItem(path=_image_for(root, xml_path, filename), source_id=rel, annotations=tuple(anns)))
    return Dataset(name=name, root=root, items=items, categories=categories, warnings=warnings)
