"""Domain errors of ingest."""

from __future__ import annotations


class ImageRefused(Exception):
    """The bytes are not an acceptable image. ``reason`` is a stable code; ``message`` tells a person why."""

    def __init__(self, reason: str, message: str, *, sha256: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.sha256 = sha256

    def __reduce__(self):  # survive the trip back from a worker process
        return (_rebuild, (self.reason, self.message, self.sha256))


def _rebuild(reason: str, message: str, sha256: str | None) -> ImageRefused:
    return ImageRefused(reason, message, sha256=sha256)
