"""``annotation.created`` / ``annotation.updated`` / ``annotation.deleted``.

Produced by annotation for every change (the history keeps the full states);
consumed by search, which re-projects the image from MongoDB, so the event
only needs to say which image changed and at which version.
"""

from __future__ import annotations

from datetime import datetime

from shared.events.envelope import EventData


class _AnnotationChange(EventData):
    annotation_id: str
    image_id: str
    version: int
    type: str
    label: str
    changed_by: str
    changed_at: datetime


class AnnotationCreated(_AnnotationChange):
    event_type = "annotation.created"
    event_schema = 1


class AnnotationUpdated(_AnnotationChange):
    event_type = "annotation.updated"
    event_schema = 1

    previous_label: str | None = None


class AnnotationDeleted(_AnnotationChange):
    event_type = "annotation.deleted"
    event_schema = 1
