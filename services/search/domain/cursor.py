"""The opaque cursor: where the last page ended (``search_after``) and the snapshot (point in time) it came from."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ValidationError

from services.search.domain.errors import bad_cursor


class Cursor(BaseModel):
    sort: str  # the sort the pages are cut in; the next request must ask for the same
    after: list[Any]  # sort values of the last hit
    pit: str | None = None  # point-in-time id: every page reads the same snapshot


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps(cursor.model_dump(exclude_none=True), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str, *, sort: str, sort_fields: int) -> Cursor:
    try:
        padded = value + "=" * (-len(value) % 4)
        cursor = Cursor.model_validate_json(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, ValidationError):
        raise bad_cursor() from None
    if cursor.sort != sort:
        raise bad_cursor(f"This cursor pages through results sorted by {cursor.sort!r}; pass the same sort (and filters) as the first page.")
    if len(cursor.after) != sort_fields:
        raise bad_cursor()
    return cursor
