"""Listing rejections, newest first, with an opaque cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.ingest.adapters.repository import REJECTIONS
from shared.cursors import BadCursor
from shared.cursors import decode_cursor as decode_value
from shared.cursors import encode_cursor as encode_value


def encode_cursor(rejected_at: datetime, rejection_id: str) -> str:
    return encode_value([rejected_at.isoformat(), rejection_id])


MAX_CURSOR = 512  # the ones handed out are under 100 characters


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(time, id) of a cursor :func:`encode_cursor` made; anything else, however crafted, is a :class:`BadCursor`."""
    when_and_id = decode_value(cursor, max_chars=MAX_CURSOR)
    try:
        when, rid = when_and_id
        if not isinstance(when, str) or not isinstance(rid, str):
            raise TypeError("not a time and an id")
        parsed = datetime.fromisoformat(when)
        # In UTC, as stored: an offset that pushes the time past year 1 or 9999 cannot be encoded for MongoDB.
        return (parsed.astimezone(UTC) if parsed.tzinfo else parsed), rid
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadCursor(str(exc)) from None


async def list_rejections(
    db: AsyncDatabase,
    *,
    limit: int,
    cursor: str | None = None,
    reason: str | None = None,
    source_kind: str | None = None,
    import_id: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    query: dict[str, Any] = {}
    if reason:
        query["reason"] = reason
    if source_kind:
        query["origin.kind"] = source_kind
    if import_id:
        query["origin.import_id"] = import_id
    if cursor:
        when, rid = decode_cursor(cursor)
        query["$or"] = [{"rejected_at": {"$lt": when}}, {"rejected_at": when, "_id": {"$lt": rid}}]
    found = await db[REJECTIONS].find(query).sort([("rejected_at", -1), ("_id", -1)]).limit(limit + 1).to_list()
    page = found[:limit]
    next_cursor = encode_cursor(page[-1]["rejected_at"], page[-1]["_id"]) if len(found) > limit else None
    return page, next_cursor
