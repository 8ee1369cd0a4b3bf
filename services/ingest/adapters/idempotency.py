"""Idempotency-Key: the first response to a key is stored and replayed for every repeat.

A key is scoped to the caller (two users may pick the same key) and to the
endpoint. The request that claims a key holds a lease on it and renews the
lease while it runs; a repeat that arrives meanwhile gets 409. If the process
running it dies (a crash, SIGKILL, a lost machine), the lease runs out and the
next repeat takes the key over and runs the request again, instead of being
refused until the entry expires. Entries expire after ``ttl_seconds``
(MongoDB TTL index).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.events import utcnow


IDEMPOTENCY = "idempotency_keys"


@dataclass(frozen=True)
class Stored:
    status: int | None  # None: the first request is still running
    body: Any = None
    locked_until: datetime | None = None  # while running: when its lease runs out unless renewed
    fingerprint: str | None = None  # of the request that was answered (None for entries from before fingerprints)


class IdempotencyStore:
    def __init__(self, db: AsyncDatabase, ttl_seconds: int, lease_seconds: float = 30.0) -> None:
        self.keys = db[IDEMPOTENCY]
        self.ttl = timedelta(seconds=ttl_seconds)
        self.lease = timedelta(seconds=lease_seconds)

    async def ensure_indexes(self) -> None:
        await self.keys.create_index("expires_at", expireAfterSeconds=0)

    async def claim(self, key: str) -> Stored | None:
        """Claim ``key`` for a new request; None if claimed, else what the first request left.

        A key whose request stopped renewing its lease (its process died) is taken over.
        """
        now = utcnow()
        try:
            await self.keys.insert_one(
                {"_id": key, "status": None, "created_at": now, "locked_until": now + self.lease, "expires_at": now + self.ttl}
            )
            return None
        except DuplicateKeyError:
            pass
        # Entries from before leases have no locked_until: $not/$gte matches them as run out too.
        taken = await self.keys.find_one_and_update(
            {"_id": key, "status": None, "locked_until": {"$not": {"$gte": now}}},
            {"$set": {"locked_until": now + self.lease, "expires_at": now + self.ttl}, "$inc": {"takeovers": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return None
        found = await self.keys.find_one({"_id": key})
        if found is None:  # expired between the calls: claim again
            return await self.claim(key)
        return Stored(found.get("status"), found.get("body"), found.get("locked_until"), found.get("fingerprint"))

    async def renew(self, key: str) -> None:
        await self.keys.update_one({"_id": key, "status": None}, {"$set": {"locked_until": utcnow() + self.lease}})

    @asynccontextmanager
    async def leased(self, key: str) -> AsyncIterator[None]:
        """Renew the lease on a claimed ``key`` for as long as the block runs."""

        async def keep() -> None:
            interval = self.lease.total_seconds() / 3
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.renew(key)
                except PyMongoError:  # the next renewal retries; a lapsed lease only lets a repeat run early
                    pass

        task = asyncio.create_task(keep(), name=f"idempotency-lease:{key}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def complete(self, key: str, status: int, body: Any, fingerprint: str | None = None) -> None:
        update = {"$set": {"status": status, "body": body, "fingerprint": fingerprint}, "$unset": {"locked_until": ""}}
        await self.keys.update_one({"_id": key}, update)

    async def release(self, key: str) -> None:
        """The request failed without an answer worth replaying: let a retry run it again."""
        await self.keys.delete_one({"_id": key, "status": None})
