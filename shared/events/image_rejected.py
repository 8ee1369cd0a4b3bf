"""``image.rejected`` — an input was refused, with a reason code and a message a person can act on."""

from __future__ import annotations

from datetime import datetime

from shared.events.envelope import EventData


class ImageRejected(EventData):
    event_type = "image.rejected"
    event_schema = 1

    rejection_id: str
    reason: str
    message: str
    source: str | None = None
    filename: str | None = None
    sha256: str | None = None
    rejected_at: datetime
