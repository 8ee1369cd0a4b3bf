"""Lists newest first by (time, id), a page at a time, with opaque cursors: rejections and import jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.cursors import BadCursor
from shared.cursors import decode_cursor as decode_value
from shared.cursors import encode_cursor as encode_value

MAX_CURSOR = 512  # the ones handed out are under 100 characters


def encode_cursor(when: datetime, item_id: str) -> str:
    return encode_value([when.isoformat(), item_id])


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(time, id) of a cursor :func:`encode_cursor` made; anything else, however crafted, is a :class:`BadCursor`."""
    when_and_id = decode_value(cursor, max_chars=MAX_CURSOR)
    try:
        when, item_id = when_and_id
        if not isinstance(when, str) or not isinstance(item_id, str):
            raise TypeError("not a time and an id")
        parsed = datetime.fromisoformat(when)
        # In UTC, as stored: an offset that pushes the time past year 1 or 9999 cannot be encoded for MongoDB.
        return (parsed.astimezone(UTC) if parsed.tzinfo else parsed), item_id
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadCursor(str(exc)) from None


async def newest_first(
    collection: AsyncCollection, query: dict[str, Any], time_field: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the documents ``query`` matches, newest first (ties by id), and the next page's cursor."""
    if cursor:
        when, item_id = decode_cursor(cursor)
        query = {**query, "$or": [{time_field: {"$lt": when}}, {time_field: when, "_id": {"$lt": item_id}}]}
    found = await collection.find(query).sort([(time_field, -1), ("_id", -1)]).limit(limit + 1).to_list()
    page = found[:limit]
    return page, encode_cursor(page[-1][time_field], page[-1]["_id"]) if len(found) > limit else None
