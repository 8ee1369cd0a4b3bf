"""The annotation domain's errors; views turn them into problem details."""

from __future__ import annotations

from typing import Any


class AnnotationError(Exception):
    """Base: ``status`` and ``slug`` say how HTTP shows it; ``extra`` adds fields to the problem."""

    status = 400
    slug = "bad-request"
    title = "Bad Request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidAnnotation(AnnotationError):
    """Geometry, label or image do not pass validation (422); ``reason`` is a stable code."""

    status = 422
    slug = "invalid-annotation"
    title = "Invalid annotation"

    def __init__(self, reason: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, reason=reason, **extra)
        self.reason = reason


class InvalidExport(InvalidAnnotation):
    """An export request that cannot be met as asked (422, with a ``reason``): no selection, unknown classes,
    a format that cannot hold the selection. It was titled "Invalid annotation", which named no annotation."""

    slug = "invalid-export"
    title = "Invalid export"


class NotFound(AnnotationError):
    status = 404
    slug = "not-found"
    title = "Not Found"


class VersionConflict(AnnotationError):
    """A write named a version that is no longer current (412, with the current state)."""

    status = 412
    slug = "version-conflict"
    title = "Precondition Failed"


class LabelConflict(AnnotationError):
    """A label name or alias already belongs to another label (409)."""

    status = 409
    slug = "label-conflict"
    title = "Conflict"


class NotAllowed(AnnotationError):
    """The caller's role may not touch this annotation (403)."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class OriginalMissing(AnnotationError):
    """An image to export has a document but no original in object storage (409): the stores disagree."""

    status = 409
    slug = "original-missing"
    title = "Conflict"
