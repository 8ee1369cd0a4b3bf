"""From events to search documents."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from shared.events import ImageIngested

_WORD_SEPARATORS = re.compile(r"[\s_\-.]+")


def _filename_words(filename: str | None) -> str:
    if not filename:
        return ""
    stem = PurePosixPath(filename.replace("\\", "/")).name
    return _WORD_SEPARATORS.sub(" ", stem).strip()


def image_document(event: ImageIngested) -> dict[str, Any]:
    """The Elasticsearch document for an image: its metadata plus a free-text field."""
    text_parts = [*event.tags, _filename_words(event.filename), event.source or ""]
    return {
        "image_id": event.image_id,
        "version": event.version,
        "sha256": event.sha256,
        "width": event.width,
        "height": event.height,
        "megapixels": round(event.width * event.height / 1e6, 4),
        "aspect_ratio": round(event.width / event.height, 4),
        "format": event.format.lower(),
        "bytes": event.bytes,
        "tags": event.tags,
        "source": event.source,
        "filename": event.filename,
        "phash": event.phash,
        "dhash": event.dhash,
        "created_at": event.created_at.isoformat(),
        "indexed_at": datetime.now(UTC).isoformat(),
        "text": " ".join(part for part in text_parts if part),
    }
