"""YOLO: ``images/…`` with ``labels/….txt`` beside them, class names in classes.txt (or data.yaml).

A label line is ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 …`` (a
polygon), all normalised to 0..1; they are turned into pixels once the
image's size is known.
"""

from __future__ import annotations

from pathlib import Path

from services.ingest.domain.datasets.model import Dataset, DatasetError, ImportItem, is_image_file
from shared.events import ImportedAnnotation, ImportedCategory
from shared.naming import normalize_name


def _class_names(root: Path) -> list[str]:
    for name in ("classes.txt", "obj.names", "labels/classes.txt"):
        if (root / name).is_file():
            return [line.strip() for line in (root / name).read_text().splitlines() if line.strip()]
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            import yaml

            names = (yaml.safe_load((root / name).read_text()) or {}).get("names")
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names, key=int)]
            if isinstance(names, list):
                return [str(n) for n in names]
    raise DatasetError(f"No class names in {root}: add classes.txt (one name a line) or data.yaml with 'names'.")


def _label_file(root: Path, image: Path) -> Path:
    rel = image.relative_to(root)
    parts = ["labels" if p == "images" else p for p in rel.parts]
    return root.joinpath(*parts).with_suffix(".txt")


def _parse_line(line: str, source_id: str, names: list[str]) -> ImportedAnnotation:
    values = line.split()
    cls = int(values[0])
    if not 0 <= cls < len(names):
        raise ValueError(f"class {cls} is not in the {len(names)} class names")
    label = normalize_name(names[cls])
    coords = [float(v) for v in values[1:]]
    if len(coords) == 4:
        cx, cy, w, h = coords
        return ImportedAnnotation(source_id=source_id, type="bbox", label=label, bbox=[cx - w / 2, cy - h / 2, w, h])
    if len(coords) >= 6 and len(coords) % 2 == 0:
        xs, ys = coords[0::2], coords[1::2]
        bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        return ImportedAnnotation(source_id=source_id, type="polygon", label=label, polygon=[coords], bbox=bbox)
    raise ValueError(f"{len(coords)} coordinates: expected 4 (box) or an even number ≥ 6 (polygon)")


def read(root: Path, name: str) -> Dataset:
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    names = _class_names(root)
    categories = {normalize_name(n): ImportedCategory(name=normalize_name(n), external_id=str(i)) for i, n in enumerate(names)}
    images_root = root / "images" if (root / "images").is_dir() else root
    warnings: list[str] = []
    items: list[ImportItem] = []
    for path in sorted(p for p in images_root.rglob("*") if is_image_file(p)):
        rel = path.relative_to(root).as_posix()
        labels = _label_file(root, path)
        anns: list[ImportedAnnotation] = []
        if labels.is_file():
            for number, line in enumerate(labels.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    anns.append(_parse_line(line, f"{labels.relative_to(root).as_posix()}:{number}", names))
                except ValueError as exc:
                    warnings.append(f"{labels.relative_to(root)}:{number}: {exc}")
        items.append(ImportItem(path=path, source_id=rel, annotations=tuple(anns), normalised=True))
    return Dataset(name=name, root=root, items=items, categories=categories, warnings=warnings)
