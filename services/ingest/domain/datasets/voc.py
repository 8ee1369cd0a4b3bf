"""Pascal VOC: one XML per image (``Annotations/*.xml``), images in ``JPEGImages/``.

VOC boxes are 1-based inclusive ``xmin ymin xmax ymax``; they become COCO-order
``[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]`` (the Detectron convention). A box
written 0-based (``xmin=0``, common outside the devkit) starts a pixel before the image; the importer
moves it onto the edge (``model.EDGE_TOLERANCE``).

A ``<part>`` of an object (a person's head, hand, foot in VOC's person layout) becomes a box of its
own, labelled with the part's name, whose ``part_of`` attribute is the object's ``source_id``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from services.ingest.domain.datasets.model import Dataset, DatasetError, ImportItem, finite_numbers, first_file, inside
from shared.events import ImportedAnnotation, ImportedCategory
from shared.naming import normalize_name


# How VOC tools write a flag (difficult, truncated, occluded): 0/1, as a float, or as a word.
FLAG_WORDS = {"true": 1, "yes": 1, "false": 0, "no": 0}


def _image_for(root: Path, xml_path: Path, filename: str) -> tuple[Path, tuple[Path, ...]]:
    """The image's file, and every place it was looked for (named when it is in none of them)."""
    return first_file((root / "JPEGImages", root / "images", xml_path.parent), filename)


def _box(obj: ET.Element, what: str = "an object") -> list[float]:
    box = obj.find("bndbox")
    if box is None:
        raise ValueError(f"{what} without bndbox")
    texts = {k: (box.findtext(k) or "").strip() for k in ("xmin", "ymin", "xmax", "ymax")}
    if missing := [k for k, text in texts.items() if not text]:
        raise ValueError(f"bndbox without <{missing[0]}>")
    xmin, ymin, xmax, ymax = finite_numbers(list(texts.values()), "bndbox")
    if not (xmax >= xmin and ymax >= ymin):
        raise ValueError(f"an empty or inverted box ({xmin}, {ymin}, {xmax}, {ymax})")
    return finite_numbers([xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1], "bndbox")


def _flag(obj: ET.Element, name: str) -> int:
    """A flag as 0 or 1, however it is written (``1``, ``1.0``, ``true``, ``yes``); other whole numbers as they are."""
    text = (obj.findtext(name) or "0").strip()
    if text.lower() in FLAG_WORDS:
        return FLAG_WORDS[text.lower()]
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise ValueError(f"<{name}> is {text[:40]!r}, not a whole number or true/false")
    return int(number)


def _annotation(obj: ET.Element, rel: str, number: int) -> ImportedAnnotation:
    """One ``<object>``; ValueError saying which field is wrong (the object is then skipped, with a warning)."""
    label = normalize_name(obj.findtext("name") or "")
    if not label:
        raise ValueError("an object without a name")
    bbox = _box(obj)
    attributes: dict[str, int | str] = {k: _flag(obj, k) for k in ("difficult", "truncated", "occluded") if obj.find(k) is not None}
    if obj.findtext("pose"):
        attributes["pose"] = obj.findtext("pose")
    return ImportedAnnotation(source_id=f"{rel}#{number}", type="bbox", label=label, bbox=bbox, attributes=attributes)


def _parts(obj: ET.Element, owner: ImportedAnnotation, warnings: list[str]) -> list[ImportedAnnotation]:
    """The object's ``<part>`` boxes, each labelled with its name and pointing at its object; a bad one is a warning."""
    parts = []
    for number, part in enumerate(obj.findall("part")):
        source_id = f"{owner.source_id}.part{number}"
        label = normalize_name(part.findtext("name") or "")
        try:
            if not label:
                raise ValueError("a part without a name")
            bbox = _box(part, "a part")
        except ValueError as exc:
            warnings.append(f"{source_id}: {exc}; the part is skipped")
            continue
        parts.append(ImportedAnnotation(source_id=source_id, type="bbox", label=label, bbox=bbox, attributes={"part_of": owner.source_id}))
    return parts


def _parse(xml_path: Path, root: Path, rel: str, warnings: list[str]) -> ET.Element | None:
    """The XML's root element; None (and a warning) when it is not XML, cannot be read or leads out of the dataset."""
    if not inside(xml_path, root):
        warnings.append(f"{rel}: leads outside the dataset; not read")
        return None
    try:
        return ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        warnings.append(f"{rel}: not XML ({exc})")
    except OSError as exc:
        warnings.append(f"{rel}: cannot be read ({exc.strerror or exc})")
    return None


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
        tree = _parse(xml_path, root, rel, warnings)
        if tree is None:
            continue
        filename = (tree.findtext("filename") or xml_path.with_suffix(".jpg").name).strip()
        anns: list[ImportedAnnotation] = []
        for number, obj in enumerate(tree.iter("object")):
            try:
                annotation = _annotation(obj, rel, number)
            except ValueError as exc:
                warnings.append(f"{rel} object {number}: {exc}")
                continue
            for each in (annotation, *_parts(obj, annotation, warnings)):
                categories.setdefault(each.label, ImportedCategory(name=each.label))
                anns.append(each)
        path, looked_at = _image_for(root, xml_path, filename)
        items.append(ImportItem(path=path, looked_at=looked_at, source_id=rel, annotations=tuple(anns)))
    return Dataset(name=name, root=root, items=items, categories=categories, warnings=warnings)
