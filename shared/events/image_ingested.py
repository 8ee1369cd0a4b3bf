"""``image.ingested`` — a new image is stored (blob in MinIO, document in MongoDB).

Carries the searchable state of the image, so consumers need not read MongoDB.
``version`` is the document's version: consumers use it to ignore stale events.
"""

from __future__ import annotations

from datetime import datetime

from shared.events.envelope import EventData


class ImageIngested(EventData):
    event_type = "image.ingested"
    event_schema = 1

    image_id: str
    version: int
    sha256: str
    width: int
    height: int
    format: str
    bytes: int
    tags: list[str] = []
    source: str | None = None
    filename: str | None = None
    phash: str | None = None
    dhash: str | None = None
    created_at: datetime
