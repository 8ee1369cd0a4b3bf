"""YOLO: ``images/…`` with ``labels/….txt`` beside them, class names in classes.txt (or data.yaml).

A label line is ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 …`` (a
polygon), all normalised to 0..1; they are turned into pixels once the
image's size is known.
"""

from __future__ import annotations

from pathlib import Path

from services.ingest.domain.datasets.model import Dataset, DatasetError, ImportItem, finite_numbers, inside, is_image_file
from shared.events import ImportedAnnotation, ImportedCategory
from shared.naming import normalize_name

# A normalised coordinate beyond this is nonsense, and scaled to pixels it could overflow to infinity.
MAX_NORMALISED = 1e6


def _read_text(path: Path) -> str:
    """A dataset-level text file (class names); DatasetError naming it when it cannot be read as UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None


def _yaml_names(path: Path) -> list[str] | None:
    """The ``names`` of a data.yaml (a list, or a mapping from class number to name); None without one."""
    import yaml

    try:
        doc = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path} is not valid YAML: {' '.join(str(exc).split())}.") from None
    if doc is not None and not isinstance(doc, dict):
        raise DatasetError(f"{path} must be a mapping with 'names' (the class names), not a {type(doc).__name__}.")
    names = (doc or {}).get("names")
    if isinstance(names, dict):
        try:
            return [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: the keys of 'names' must be class numbers (0, 1, …).") from None
    if isinstance(names, list):
        return [str(n) for n in names]
    return None


def _class_names(root: Path) -> list[str]:
    for name in ("classes.txt", "obj.names", "labels/classes.txt"):
        if (root / name).is_file():
            return [line.strip() for line in _read_text(root / name).splitlines() if line.strip()]
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file() and (names := _yaml_names(root / name)) is not None:
            return names
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
    coords = finite_numbers(values[1:], "coordinates")
    if any(abs(v) > MAX_NORMALISED for v in coords):
        raise ValueError("a coordinate is far outside 0..1 (normalised coordinates are fractions of the image)")
    if len(coords) == 4:
        cx, cy, w, h = coords
        return ImportedAnnotation(source_id=source_id, type="bbox", label=label, bbox=[cx - w / 2, cy - h / 2, w, h])
    if len(coords) >= 6 and len(coords) % 2 == 0:
        xs, ys = coords[0::2], coords[1::2]
        bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        return ImportedAnnotation(source_id=source_id, type="polygon", label=label, polygon=[coords], bbox=bbox)
    raise ValueError(f"{len(coords)} coordinates: expected 4 (box) or an even number ≥ 6 (polygon)")


def _label_lines(root: Path, labels: Path, warnings: list[str]) -> list[str]:
    """The label file's lines; none (and a warning) when it cannot be read, so the image still comes in."""
    rel = labels.relative_to(root).as_posix()
    if not labels.is_file():
        return []
    if not inside(labels, root):
        warnings.append(f"{rel}: leads outside the dataset; not read")
        return []
    try:
        return labels.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        warnings.append(f"{rel}: not UTF-8 text ({exc.reason} at byte {exc.start}); its labels are skipped")
    except OSError as exc:
        warnings.append(f"{rel}: cannot be read ({exc.strerror or exc}); its labels are skipped")
    return []


def _annotations(root: Path, labels: Path, names: list[str], warnings: list[str]) -> list[ImportedAnnotation]:
    anns: list[ImportedAnnotation] = []
    rel = labels.relative_to(root).as_posix()
    for number, line in enumerate(_label_lines(root, labels, warnings), start=1):
        if not line.strip():
            continue
        try:
            anns.append(_parse_line(line, f"{rel}:{number}", names))
        except ValueError as exc:
            warnings.append(f"{rel}:{number}: {exc}")
    return anns


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
        anns = _annotations(root, _label_file(root, path), names, warnings)
        items.append(ImportItem(path=path, source_id=rel, annotations=tuple(anns), normalised=True))
    return Dataset(name=name, root=root, items=items, categories=categories, warnings=warnings)
