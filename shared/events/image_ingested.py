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
    # Optional since schema 1 (absent in the first events): filled by the full pipeline.
    source_kind: str | None = None  # upload | url | upstream | dataset | folder
    dataset: str | None = None
    licence: str | None = None
    author: str | None = None
    uploader: str | None = None  # the user id that sent it
    captured_at: datetime | None = None  # EXIF DateTimeOriginal
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    thumbnail: bool = False  # a 256 px JPEG exists under shared.clients.blobs.thumbnail_key(sha256)
    near_duplicate_of: str | None = None  # image id of the original this one nearly duplicates
