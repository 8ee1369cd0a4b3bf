"""COCO's ``instances.json`` as the export writes it: :class:`CocoDocument`'s pieces, a page at a time, joined."""

from __future__ import annotations

import json

from services.annotation.domain import export_formats


def coco_text(images: list[dict], annotations: list[dict], labels: dict[str, dict], id_scheme: str | None,
              classes: list[str] | None = None, page: int = 2) -> str:  # fmt: skip
    """The labels of the geometric annotations up front, as the export asks MongoDB for them; then the
    annotations (all of them: the document leaves the others out) ``page`` at a time."""
    used = sorted({a["label_id"] for a in annotations if a["type"] in export_formats.GEOMETRIC})
    document = export_formats.CocoDocument(images, used, labels, id_scheme, classes)
    pages = (document.annotations(annotations[start : start + page]) for start in range(0, len(annotations), page))
    return document.head() + "".join(pages) + document.tail()


def coco_document(*args, **kwargs) -> dict:
    """:func:`coco_text`, read as a COCO reader reads it."""
    return json.loads(coco_text(*args, **kwargs))
