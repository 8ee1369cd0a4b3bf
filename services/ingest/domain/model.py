"""The image document (MongoDB's source of truth), where it came from, and what probing yields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.events import ImageIngested

SOURCE_KINDS = ("upload", "url", "upstream", "dataset", "folder")


class ImageFacts(BaseModel):
    """What the bytes say about themselves: computed in a worker process."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    bytes: int
    format: str
    mime: str
    width: int
    height: int
    mode: str
    phash: str
    dhash: str


class Exif(BaseModel):
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    captured_at: datetime | None = None
    gps: dict[str, float] | None = None  # {"lat", "lon"}: in the document only, never in a derivative


class Origin(BaseModel):
    """Where an image came from: kept on the document (first arrival) and in ``sources`` (every arrival)."""

    kind: str = "upload"
    uri: str | None = None
    dataset: str | None = None
    licence: str | None = None
    author: str | None = None
    fetched_at: datetime | None = None
    import_id: str | None = None


class ImageDocument(BaseModel):
    """An image as stored: the id is the SHA-256 of its bytes."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(alias="_id")
    version: int = 1
    sha256: str
    width: int
    height: int
    format: str
    mime: str
    bytes: int
    mode: str
    phash: str
    dhash: str
    phash_bands: list[str] = []
    phash_bands_radius: int | None = None  # the near-duplicate radius the bands were made for (rebanding.py)
    tags: list[str] = []
    source: str | None = None
    filename: str | None = None
    origin: Origin = Origin()
    uploader: str | None = None
    exif: Exif = Exif()
    metadata: dict[str, Any] = {}
    thumbnail: bool = False
    standard_key: str | None = None
    near_duplicate_of: str | None = None
    near_duplicate_distance: int | None = None
    created_at: datetime

    def to_mongo(self) -> dict:
        return self.model_dump(by_alias=True)

    def to_event(self) -> ImageIngested:
        return ImageIngested(
            image_id=self.id,
            version=self.version,
            sha256=self.sha256,
            width=self.width,
            height=self.height,
            format=self.format,
            bytes=self.bytes,
            tags=self.tags,
            source=self.source,
            filename=self.filename,
            phash=self.phash,
            dhash=self.dhash,
            created_at=self.created_at,
            source_kind=self.origin.kind,
            dataset=self.origin.dataset,
            licence=self.origin.licence,
            author=self.origin.author,
            uploader=self.uploader,
            captured_at=self.exif.captured_at,
            camera_make=self.exif.camera_make,
            camera_model=self.exif.camera_model,
            lens=self.exif.lens,
            thumbnail=self.thumbnail,
            near_duplicate_of=self.near_duplicate_of,
        )


class ImageOut(BaseModel):
    """An image document as the API shows it."""

    id: str
    version: int
    sha256: str
    width: int
    height: int
    format: str
    mime: str
    bytes: int
    tags: list[str]
    source: str | None
    filename: str | None
    phash: str
    dhash: str
    origin: Origin
    uploader: str | None
    exif: Exif
    metadata: dict[str, Any]
    thumbnail: bool
    near_duplicate_of: str | None
    near_duplicate_distance: int | None
    created_at: datetime

    @classmethod
    def of(cls, doc: ImageDocument) -> ImageOut:
        return cls.model_validate(doc.model_dump())
