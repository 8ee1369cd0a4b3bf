"""The cursors' snapshots (Elasticsearch points in time) each caller has open, kept in MongoDB.

The first page is a plain search; its cursor carries no snapshot, and the request for page 2 opens one.
Two rules keep a caller from piling snapshots up (each lives the keep-alive, and Elasticsearch holds the
segments it reads until then):

- **A page-1 cursor opens one snapshot**: the snapshot is recorded under the caller and a digest of the
  cursor, and a replay of that cursor (a retried request for page 2, an export asked again) reads the same
  one while it is recorded: the same page 2, and nothing new opened.
- **At most ``per_caller`` opened within a keep-alive**: opening one more closes the caller's oldest; a
  cursor on it then answers 410 ``cursor-expired``. Cursors crafted by hand (any ``after`` values of the
  right types pass) are bounded by this rule too.

A record lives the keep-alive from its opening (a TTL index removes it); a snapshot that pages keep alive
longer is no longer counted, but it is then held by a reader paging at least once per keep-alive, not piled
up. The last page closes its snapshot and removes the record.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.search.adapters.index import ImageIndex

SNAPSHOTS = "search_snapshots"


def origin_of(cursor: str) -> str:
    """The digest a page-1 cursor's snapshot is recorded under."""
    return hashlib.sha256(cursor.encode()).hexdigest()


class Snapshots:
    def __init__(self, db: AsyncDatabase, index: ImageIndex, *, per_caller: int) -> None:
        self.records = db[SNAPSHOTS]
        self.index = index
        self.per_caller = per_caller
        self.keep_alive = index.keep_alive_span

    async def ensure_indexes(self) -> None:
        await self.records.create_index([("caller", 1), ("origin", 1), ("opened_at", DESCENDING)])
        await self.records.create_index([("caller", 1), ("opened_at", DESCENDING)])
        await self.records.create_index("expires_at", expireAfterSeconds=0)

    async def for_cursor(self, caller: str, origin: str) -> str:
        """The snapshot the page-1 cursor ``origin`` opened for ``caller``, or a new one."""
        record = await self.records.find_one(
            {"caller": caller, "origin": origin, "expires_at": {"$gt": datetime.now(UTC)}}, sort=[("opened_at", DESCENDING)]
        )
        return record["_id"] if record is not None else await self.open(caller, origin)

    async def open(self, caller: str, origin: str) -> str:
        """A new snapshot of the index, recorded; the caller's oldest beyond ``per_caller`` are closed."""
        pit = await self.index.open_pit(self.index.keep_alive)
        now = datetime.now(UTC)
        await self.records.insert_one({"_id": pit, "caller": caller, "origin": origin, "opened_at": now, "expires_at": now + self.keep_alive})
        oldest = self.records.find(
            {"caller": caller, "expires_at": {"$gt": now}}, {"_id": 1}, sort=[("opened_at", DESCENDING)], skip=self.per_caller
        )
        for record in await oldest.to_list():
            await self.close(record["_id"])
        return pit

    async def close(self, pit: str) -> None:
        """Close a snapshot no page will read again (one already gone is no error) and forget it."""
        await self.index.close_pit(pit)
        await self.records.delete_one({"_id": pit})
