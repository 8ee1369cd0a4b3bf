"""``label.changed`` — a label was created, renamed, merged, aliased, described or re-parented.

Consumed by search, which re-projects the images carrying the label (or, for a
merge, the old one) so label filters and facets use the current names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.events.envelope import EventData


class LabelChanged(EventData):
    event_type = "label.changed"
    event_schema = 1

    label_id: str
    name: str
    change: Literal["created", "renamed", "merged", "aliased", "described", "reparented", "updated"]
    previous_name: str | None = None
    merged_into: str | None = None  # for "merged": the surviving label's id
    aliases: list[str] = []
    changed_by: str
    changed_at: datetime
