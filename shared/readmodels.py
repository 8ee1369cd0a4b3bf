"""Documents one service writes and others read: the names and shapes they agree on.

- ``images`` (written by ingest): the image documents; search reads them to
  project the index and to answer ``GET /v1/images/{id}``.
- ``annotation_summaries`` (written by annotation, in the same transaction as
  each annotation change): per image, the label names with counts, counts per
  annotation type, and a version that increases with every change. Search
  reads it to project label fields, so it never has to read annotations.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

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
