"""Request and response shapes of annotations, kept apart from storage and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import utcnow

# What ``POST /v1/exports`` and ``corpus export --format`` offer (``domain/export_formats.py`` writes them).
ExportFormat = Literal["coco", "yolo", "yolo-seg", "yolo-pose", "voc", "imagefolder"]

# The fields that make up an annotation's state: what history keeps and diffs.
STATE_FIELDS = (
    "image_id", "type", "label_id", "bbox", "polygon", "rle", "keypoints",
    "area", "score", "attributes", "dataset", "source_id", "deleted", "created_at", "created_by",
)  # fmt: skip
GEOMETRY_KEYS = ("bbox", "polygon", "rle", "keypoints", "area")


class AnnotationIn(BaseModel):
    """A new annotation. Geometry follows the type (see the README's geometry conventions)."""

    model_config = ConfigDict(extra="forbid")

    image_id: str = Field(min_length=1)
    # Any text: an unknown type is refused by the geometry check with reason ``unknown_type`` (per item in bulk).
    type: str = Field(description="bbox, polygon, mask, keypoints or classification")
    label: str = Field(min_length=1, description="A label name or alias; normalised, created if new")
    bbox: Any = Field(default=None, description="[x, y, width, height] in pixels")
    polygon: Any = Field(default=None, description="rings, each [x1, y1, x2, y2, ...]")
    rle: Any = Field(default=None, description='COCO RLE {"size": [h, w], "counts": "..."}')
    keypoints: Any = Field(default=None, description="[[x, y, visibility], ...]")
    score: float | None = Field(default=None, ge=0, le=1)
    attributes: dict[str, Any] = {}


class AnnotationPatch(BaseModel):
    """Fields to change; absent fields stay. Changing the type or any geometry re-validates the geometry."""

    model_config = ConfigDict(extra="forbid")

    # ``null`` for type, label or attributes is refused by the service (422 with a ``reason``), per item in a bulk update.
    type: str | None = None
    label: str | None = Field(default=None, min_length=1)
    bbox: Any = None
    polygon: Any = None
    rle: Any = None
    keypoints: Any = None
    score: float | None = Field(default=None, ge=0, le=1)
    attributes: dict[str, Any] | None = None


# Versions are stored as 64-bit integers: a larger one names no version (and would not encode in a query).
MAX_VERSION = 2**63 - 1


class HistoryEntryOut(BaseModel):
    """One version of an annotation: the full state then, who made it, when, and what changed."""

    annotation_id: str
    version: int
    action: Literal["created", "updated", "deleted", "reverted"]
    changed_by: str
    changed_at: datetime
    changes: dict[str, dict[str, Any]]
    state: dict[str, Any]
    reverted_to: int | None = None


def state_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in STATE_FIELDS}


def changes_between(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Field-level diff: ``{field: {"from": old, "to": new}}`` for every field that differs."""
    before = before or {}
    return {
        k: {"from": before.get(k), "to": after.get(k)} for k in STATE_FIELDS if before.get(k) != after.get(k)
    }


def now_ms() -> datetime:
    """Now, to the millisecond MongoDB keeps, so what a write returns equals what a read gives back."""
    t = utcnow()
    return t.replace(microsecond=t.microsecond // 1000 * 1000)
