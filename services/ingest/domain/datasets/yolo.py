"""YOLO: ``images/…`` with ``labels/….txt`` beside them, class names in classes.txt (or data.yaml).

A label line is ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 …`` (a
polygon), all normalised to 0..1; they are turned into pixels once the
image's size is known. A pose dataset (``kpt_shape: [K, D]`` in data.yaml) has
``class cx cy w h`` and K keypoints of D numbers (``x y`` or ``x y visibility``):
a box carrying its keypoints.

Class names are kept by number: data.yaml's ``names`` may be a mapping with
gaps (``{0: person, 2: car}``), and a blank line in the middle of classes.txt
is a class without a name (its lines are skipped, with a warning) rather than
a shift of every later class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.ingest.domain.datasets.model import Dataset, DatasetError, ImportItem, finite_numbers, inside, is_image_file
from shared.events import ImportedAnnotation, ImportedCategory
from shared.naming import normalize_name

# A normalised coordinate beyond this is nonsense, and scaled to pixels it could overflow to infinity.
MAX_NORMALISED = 1e6

# Class number → name; None for a blank line of classes.txt.
Names = dict[int, str | None]
# Ultralytics' kpt_shape: keypoints per object, numbers per keypoint (2: x y; 3: x y visibility).
KptShape = tuple[int, int]


def _read_text(path: Path) -> str:
    """A dataset-level text file (class names); DatasetError naming it when it cannot be read as UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path} is not valid YAML: {' '.join(str(exc).split())}.") from None
    if doc is not None and not isinstance(doc, dict):
        raise DatasetError(f"{path} must be a mapping with 'names' (the class names), not a {type(doc).__name__}.")
    return doc or {}


def _yaml_names(path: Path) -> Names | None:
    """The ``names`` of a data.yaml (a list, or a mapping from class number to name, gaps kept); None without one."""
    names = _yaml(path).get("names")
    if isinstance(names, dict):
        try:
            return {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: the keys of 'names' must be class numbers (0, 1, …).") from None
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    return None


def _kpt_shape(root: Path) -> KptShape | None:
    """data.yaml's ``kpt_shape`` ([K, 2] or [K, 3]); None for a dataset without keypoints."""
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            shape = _yaml(root / name).get("kpt_shape")
            if shape is None:
                return None
            if not (isinstance(shape, list) and len(shape) == 2 and all(type(v) is int for v in shape) and shape[0] > 0 and shape[1] in (2, 3)):
                raise DatasetError(f"{root / name}: 'kpt_shape' must be [keypoints, 2 or 3], not {shape!r}.")
            return shape[0], shape[1]
    return None


def _text_names(text: str) -> Names:
    """One name a line; trailing blank lines end the list, a blank line before a name is a class without one."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return {i: line or None for i, line in enumerate(lines)}


def _class_names(root: Path) -> Names:
    for name in ("classes.txt", "obj.names", "labels/classes.txt"):
        if (root / name).is_file():
            return _text_names(_read_text(root / name))
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file() and (names := _yaml_names(root / name)) is not None:
            return names
    raise DatasetError(f"No class names in {root}: add classes.txt (one name a line) or data.yaml with 'names'.")


def _label_file(root: Path, image: Path) -> Path:
    rel = image.relative_to(root)
    parts = ["labels" if p == "images" else p for p in rel.parts]
    return root.joinpath(*parts).with_suffix(".txt")


def _label(value: str, names: Names) -> str:
    cls = int(value)
    if cls not in names:
        raise ValueError(f"class {cls} is not among the class names (numbers {_numbers(names)})")
    name = names[cls]
    if name is None:
        raise ValueError(f"class {cls} has no name (a blank line in the class names); skipped")
    return normalize_name(name)


def _numbers(names: Names) -> str:
    ids = sorted(names)
    if not ids:
        return "none: the class names are empty"
    return f"{ids[0]}–{ids[-1]}" if ids == list(range(ids[0], ids[-1] + 1)) else ", ".join(map(str, ids))


def _box(coords: list[float]) -> list[float]:
    cx, cy, w, h = coords
    return [cx - w / 2, cy - h / 2, w, h]


def _pose(source_id: str, label: str, coords: list[float], kpt_shape: KptShape) -> ImportedAnnotation:
    """A box with its keypoints as ``[[x, y, v], …]``. Without a visibility (``[K, 2]``), a point at (0, 0)
    is not labelled (0), any other is visible (2), as Ultralytics reads them."""
    count, size = kpt_shape
    if len(coords) != 4 + count * size:
        raise ValueError(f"{len(coords)} numbers: a pose line of kpt_shape [{count}, {size}] has 4 + {count * size}")
    flat = coords[4:]
    points = [flat[i : i + size] for i in range(0, len(flat), size)]
    keypoints = [p if size == 3 else [p[0], p[1], 0.0 if p[0] == p[1] == 0 else 2.0] for p in points]
    labelled = keypoints if any(v > 0 for _, _, v in keypoints) else None
    return ImportedAnnotation(source_id=source_id, type="bbox", label=label, bbox=_box(coords[:4]), keypoints=labelled)


def _parse_line(line: str, source_id: str, names: Names, kpt_shape: KptShape | None = None) -> ImportedAnnotation:
    values = line.split()
    label = _label(values[0], names)
    coords = finite_numbers(values[1:], "coordinates")
    if any(abs(v) > MAX_NORMALISED for v in coords):
        raise ValueError("a coordinate is far outside 0..1 (normalised coordinates are fractions of the image)")
    if len(coords) == 4:
        return ImportedAnnotation(source_id=source_id, type="bbox", label=label, bbox=_box(coords))
    if kpt_shape is not None:
        return _pose(source_id, label, coords, kpt_shape)
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


def _annotations(root: Path, labels: Path, names: Names, kpt_shape: KptShape | None, warnings: list[str]) -> list[ImportedAnnotation]:
    anns: list[ImportedAnnotation] = []
    rel = labels.relative_to(root).as_posix()
    for number, line in enumerate(_label_lines(root, labels, warnings), start=1):
        if not line.strip():
            continue
        try:
            anns.append(_parse_line(line, f"{rel}:{number}", names, kpt_shape))
        except ValueError as exc:
            warnings.append(f"{rel}:{number}: {exc}")
    return anns


def read(root: Path, name: str) -> Dataset:
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    names = _class_names(root)
    kpt_shape = _kpt_shape(root)
    categories = {normalize_name(n): ImportedCategory(name=normalize_name(n), external_id=str(i)) for i, n in names.items() if n}
    images_root = root / "images" if (root / "images").is_dir() else root
    warnings: list[str] = []
    items: list[ImportItem] = []
    for path in sorted(p for p in images_root.rglob("*") if is_image_file(p)):
        rel = path.relative_to(root).as_posix()
        anns = _annotations(root, _label_file(root, path), names, kpt_shape, warnings)
        items.append(ImportItem(path=path, source_id=rel, annotations=tuple(anns), normalised=True))
    return Dataset(name=name, root=root, items=items, categories=categories, warnings=warnings)
