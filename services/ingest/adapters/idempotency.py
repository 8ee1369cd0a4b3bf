"""Idempotency-Key: the first response to a key is stored and replayed for every repeat.

A key is scoped to the caller (two users may pick the same key) and to the
endpoint. A repeat that arrives while the first is still running gets 409.
Entries expire after ``ttl_seconds`` (MongoDB TTL index).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.events import utcnow

IDEMPOTENCY = "idempotency_keys"


@dataclass(frozen=True)
class Stored:
    status: int | None  # None: the first request is still running
    body: Any = None


class IdempotencyStore:
    def __init__(self, db: AsyncDatabase, ttl_seconds: int) -> None:
        self.keys = db[IDEMPOTENCY]
        self.ttl = timedelta(seconds=ttl_seconds)

    async def ensure_indexes(self) -> None:
        await self.keys.create_index("expires_at", expireAfterSeconds=0)

    async def claim(self, key: str) -> Stored | None:
        """Claim ``key`` for a new request; None if claimed, else what the first request left."""
        now = utcnow()
        try:
            await self.keys.insert_one({"_id": key, "status": None, "created_at": now, "expires_at": now + self.ttl})
            return None
        except DuplicateKeyError:
            found = await self.keys.find_one({"_id": key})
            if found is None:  # expired between the two calls: claim again
                return await self.claim(key)
            return Stored(found.get("status"), found.get("body"))

    async def complete(self, key: str, status: int, body: Any) -> None:
        await self.keys.update_one({"_id": key}, {"$set": {"status": status, "body": body}})

    async def release(self, key: str) -> None:
        """The request failed without an answer worth replaying: let a retry run it again."""
        await self.keys.delete_one({"_id": key, "status": None})
