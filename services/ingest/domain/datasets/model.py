"""What a dataset reader yields."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shared.events import ImportedAnnotation, ImportedCategory

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


class DatasetError(ValueError):
    """The dataset cannot be read at all (missing file, malformed index); the message says what to fix."""


@dataclass(frozen=True)
class ImportItem:
    path: Path
    source_id: str  # the image's id in the dataset (relative path, COCO image id, ...)
    annotations: tuple[ImportedAnnotation, ...] = ()
    normalised: bool = False  # geometry in 0..1 of the image size (YOLO)
    licence: str | None = None
    uri: str | None = None
    looked_at: tuple[Path, ...] = ()  # where the reader looked for the file, when it may be in several folders


def first_file(folders: Iterable[Path], file_name: str) -> tuple[Path, tuple[Path, ...]]:
    """An image named in an index: the first of the folders that holds it, and every place it was looked for
    (named when it is in none of them). Missing, or leading out of the dataset, it is reported when read."""
    looked_at = tuple(dict.fromkeys(folder / file_name for folder in folders))  # an absolute file_name is one path
    for path in looked_at:
        if path.is_file():
            return path, looked_at
    return looked_at[0], looked_at


@dataclass
class Dataset:
    name: str
    root: Path
    items: list[ImportItem]
    categories: dict[str, ImportedCategory] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # The folder every item's file must resolve inside (links followed): ``root`` unless the reader
    # says otherwise (a COCO JSON in ``annotations/`` has its images in the folder above).
    boundary: Path | None = None

    @property
    def home(self) -> Path:
        return self.boundary or self.root

    def categories_for(self, annotations: tuple[ImportedAnnotation, ...]) -> list[ImportedCategory]:
        used = {a.label for a in annotations}
        parents = {self.categories[name].parent for name in used if name in self.categories}
        return [cat for name, cat in self.categories.items() if name in used or name in parents]


# How far past the image's edge (pixels) a box corner, polygon point or keypoint may reach and still be
# moved onto the edge. Rounding (ours to 2 decimals, an exporter's), VOC corners written 0-based
# (``xmin=0`` becomes -1) and YOLO exporters that do not clip all stay within a pixel; anything
# further is kept as it is and the annotation service refuses it, visibly.
EDGE_TOLERANCE = 1.0


def in_pixels(annotation: ImportedAnnotation, width: int, height: int) -> ImportedAnnotation:
    """A normalised annotation (0..1 of the image) in pixels of a ``width`` × ``height`` image, rounded
    to 2 decimals. A box is rounded by its corners, so a box ending on the edge still ends on it."""

    def xs_ys(values: list[float]) -> list[float]:
        return [round(v * (width if i % 2 == 0 else height), 2) for i, v in enumerate(values)]

    update: dict = {}
    if annotation.bbox is not None:
        x, y, w, h = annotation.bbox
        x1, y1, x2, y2 = xs_ys([x, y, x + w, y + h])
        update["bbox"] = [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)]
    if annotation.polygon is not None:
        update["polygon"] = [xs_ys(ring) for ring in annotation.polygon]
    if annotation.keypoints is not None:
        update["keypoints"] = [[*xs_ys([x, y]), v] for x, y, v in annotation.keypoints]
    return annotation.model_copy(update=update)


def _points(annotation: ImportedAnnotation) -> list[tuple[float, float]]:
    """Every point of the annotation's geometry that must lie in the image (unlabelled keypoints need not)."""
    points: list[tuple[float, float]] = []
    if annotation.bbox is not None and len(annotation.bbox) == 4:
        x, y, w, h = annotation.bbox
        points += [(x, y), (x + w, y + h)]
    for ring in annotation.polygon or []:
        points += list(zip(ring[0::2], ring[1::2]))
    points += [(p[0], p[1]) for p in annotation.keypoints or [] if len(p) == 3 and p[2] > 0]
    return points


def overshoot(annotation: ImportedAnnotation, width: int, height: int) -> float:
    """How far (pixels) the annotation reaches past the image's edge at most; 0 when it lies inside."""
    return max((max(-x, x - width, -y, y - height, 0.0) for x, y in _points(annotation)), default=0.0)


def fitted(annotation: ImportedAnnotation, width: int, height: int) -> tuple[ImportedAnnotation, str | None]:
    """The annotation with its geometry moved onto the edge when it reaches at most :data:`EDGE_TOLERANCE`
    past it; one reaching further is kept as it is, with a warning saying by how much."""
    beyond = overshoot(annotation, width, height)
    if beyond == 0:
        return annotation, None
    if beyond > EDGE_TOLERANCE:
        return annotation, (
            f"{annotation.source_id}: reaches {beyond:.2f} px outside the {width}×{height} image "
            f"(more than the {EDGE_TOLERANCE:g} px moved onto the edge); sent as it is, which the annotation service refuses"
        )
    return _clipped(annotation, width, height), None


def _clipped(annotation: ImportedAnnotation, width: int, height: int) -> ImportedAnnotation:
    def clip(value: float, limit: int) -> float:
        return min(max(value, 0.0), float(limit))

    def ring(values: list[float]) -> list[float]:
        return [clip(v, width if i % 2 == 0 else height) for i, v in enumerate(values)]

    update: dict = {}
    if annotation.bbox is not None and len(annotation.bbox) == 4:  # any other the annotation service refuses, visibly
        x, y, w, h = annotation.bbox
        x1, y1, x2, y2 = ring([x, y, x + w, y + h])
        update["bbox"] = [x1, y1, x2 - x1, y2 - y1]
    if annotation.polygon is not None:
        update["polygon"] = [ring(values) for values in annotation.polygon]
    if annotation.keypoints is not None:
        update["keypoints"] = [[*ring([x, y]), v] if v > 0 else [x, y, v] for x, y, v in annotation.keypoints]
    return annotation.model_copy(update=update)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def finite_numbers(values: object, what: str) -> list[float]:
    """``values`` as floats; ValueError naming ``what`` when one is not a number or not finite.

    NaN or infinity in one annotation would make its whole event unreadable downstream (JSON has
    neither), so the readers refuse that annotation here and keep the image's others.
    """
    if not isinstance(values, list | tuple):
        raise ValueError(f"{what} is not a list of numbers")
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what}: not all numbers ({values!r:.80})") from None
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{what}: not all finite (NaN or infinity)")
    return numbers


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, links followed, lies inside ``folder``; a path the system cannot resolve is not."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a link loop, a name too long
        return False
