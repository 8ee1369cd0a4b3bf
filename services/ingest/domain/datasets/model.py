"""What a dataset reader yields."""

from __future__ import annotations

import math
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


def in_pixels(annotation: ImportedAnnotation, width: int, height: int) -> ImportedAnnotation:
    """A normalised annotation (0..1 of the image) in pixels of a ``width`` × ``height`` image."""

    def xs_ys(values: list[float]) -> list[float]:
        return [round(v * (width if i % 2 == 0 else height), 2) for i, v in enumerate(values)]

    update: dict = {}
    if annotation.bbox is not None:
        update["bbox"] = xs_ys(annotation.bbox)
    if annotation.polygon is not None:
        update["polygon"] = [xs_ys(ring) for ring in annotation.polygon]
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
