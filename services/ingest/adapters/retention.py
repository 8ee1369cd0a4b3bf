"""How long ingest's bookkeeping records are kept: each carries its own ``expires_at``, and MongoDB's TTL
monitor (a pass a minute) removes it after that time. The date lives in the document, not in the index, so a
changed retention setting needs no index change and applies to records written from then on."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection

EXPIRES_AT = "expires_at"


async def ensure_expiry_index(collection: AsyncCollection) -> None:
    await collection.create_index(EXPIRES_AT, expireAfterSeconds=0)


def expires(at: datetime, days: float) -> datetime:
    return at + timedelta(days=days)


def expires_after(field: str, days: float) -> list[dict]:
    """An update pipeline giving records written before retention existed the expiry they would have had."""
    return [{"$set": {EXPIRES_AT: {"$add": [f"${field}", round(days * 24 * 3600 * 1000)]}}}]
