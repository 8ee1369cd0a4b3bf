"""Documents one service writes and others read: the names and shapes they agree on.

- ``images`` (written by ingest): the image documents; search reads them to
  project the index and to answer ``GET /v1/images/{id}``.
- ``annotation_summaries`` (written by annotation, in the same transaction as
  each annotation change): per image, the label names with counts, counts per
  annotation type, and a version that increases with every change. Search
  reads it to project label fields, so it never has to read annotations.
- ``AnnotationOut``: an annotation as the annotation API shows it; search
  shows an image's annotations in the same shape in ``GET /v1/images/{id}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events.annotations_imported import AnnotationType

IMAGES = "images"
ANNOTATION_SUMMARIES = "annotation_summaries"


class AnnotationSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    image_id: str = Field(alias="_id")
    version: int = 0
    count: int = 0
    labels: dict[str, int] = {}  # normalised label name → annotations carrying it
    types: dict[str, int] = {}  # bbox | polygon | mask | keypoints | classification → count
    updated_at: datetime | None = None


class AnnotationOut(BaseModel):
    """An annotation as the API shows it; ``version`` is also its ETag."""

    id: str
    image_id: str
    type: AnnotationType
    label: str
    label_id: str
    bbox: list[float] | None = None
    polygon: list[list[float]] | None = None
    rle: dict[str, Any] | None = None
    keypoints: list[list[float]] | None = None
    area: float | None = None
    score: float | None = None
    attributes: dict[str, Any] = {}
    dataset: str | None = None
    source_id: str | None = None
    deleted: bool = False
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @field_validator("attributes", mode="before")
    @classmethod
    def _no_null_attributes(cls, value: Any) -> Any:
        """Before PATCH refused ``"attributes": null``, it was stored: such a version reads as no attributes."""
        return {} if value is None else value

    @classmethod
    def of(cls, doc: dict[str, Any], label_name: str) -> AnnotationOut:
        return cls(id=doc["_id"], label=label_name, **{k: v for k, v in doc.items() if k != "_id"})
