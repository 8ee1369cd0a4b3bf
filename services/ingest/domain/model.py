"""The image document (MongoDB's source of truth) and what probing an image yields."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.events import ImageIngested


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
    tags: list[str] = []
    source: str | None = None
    filename: str | None = None
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
    created_at: datetime

    @classmethod
    def of(cls, doc: ImageDocument) -> ImageOut:
        return cls.model_validate(doc.model_dump())
