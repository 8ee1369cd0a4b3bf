"""Listing rejections, newest first, with an opaque cursor."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.ingest.adapters.pages import newest_first
from services.ingest.adapters.repository import REJECTIONS


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
    return await newest_first(db[REJECTIONS], query, "rejected_at", limit, cursor)
