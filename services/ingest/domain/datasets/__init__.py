"""Reading datasets on disk into items: an image file and its annotations.

Each reader returns a :class:`Dataset` whose items are in a stable order (so a
job can checkpoint by index and resume). Geometry follows the conventions of
``shared/events/annotations_imported.py``; YOLO's normalised coordinates are
kept normalised until the image's size is known (:func:`in_pixels`), and geometry a hair past the
image's edge is moved onto it then (:func:`fitted`).
"""

from __future__ import annotations

from pathlib import Path

from services.ingest.domain.datasets.model import EDGE_TOLERANCE, Dataset, DatasetError, ImportItem, fitted, in_pixels

KINDS = ("folder", "coco", "yolo", "voc")


def read_dataset(kind: str, path: Path, name: str) -> Dataset:
    from services.ingest.domain.datasets import coco, folder, voc, yolo

    readers = {"folder": folder.read, "coco": coco.read, "yolo": yolo.read, "voc": voc.read}
    if kind not in readers:
        raise DatasetError(f"Unknown import kind {kind!r}; use one of {', '.join(KINDS)}.")
    return readers[kind](path, name)


__all__ = ["EDGE_TOLERANCE", "KINDS", "Dataset", "DatasetError", "ImportItem", "fitted", "in_pixels", "read_dataset"]
