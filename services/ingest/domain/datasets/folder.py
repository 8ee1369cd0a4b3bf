"""A folder tree of images; a file's parent folder (below the root) is its class, ImageNet-style."""

from __future__ import annotations

from pathlib import Path

from services.ingest.domain.datasets.model import Dataset, DatasetError, ImportItem, is_image_file
from shared.events import ImportedAnnotation, ImportedCategory
from shared.naming import normalize_name


def read(root: Path, name: str) -> Dataset:
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    items: list[ImportItem] = []
    categories: dict[str, ImportedCategory] = {}
    for path in sorted(p for p in root.rglob("*") if is_image_file(p)):
        rel = path.relative_to(root).as_posix()
        annotations: tuple[ImportedAnnotation, ...] = ()
        if path.parent != root:
            label = normalize_name(path.parent.name)
            if label:
                categories.setdefault(label, ImportedCategory(name=label, external_id=path.parent.name))
                annotations = (ImportedAnnotation(source_id=f"{rel}#class", type="classification", label=label),)
        items.append(ImportItem(path=path, source_id=rel, annotations=annotations))
    return Dataset(name=name, root=root, items=items, categories=categories)
