"""Import jobs and their per-item outcomes in MongoDB, claimed by workers under a lease.

A job is processed by whichever ingest process holds its lease; the holder
renews it after every chunk. A process that dies stops renewing, the lease
runs out, and another (or the restarted) process claims the job and skips the
items already recorded in ``import_items``: nothing is lost or done twice.
Once a job ends, its counts are on the job and its items expire after the
retention (``import_items_retention_days``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.ingest.adapters.pages import newest_first
from services.ingest.adapters.retention import EXPIRES_AT, ensure_expiry_index, expires
from shared.events import utcnow

IMPORTS = "imports"
IMPORT_ITEMS = "import_items"
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
OUTCOMES = ("ingested", "duplicates", "near_duplicates", "rejected")
ENDED = ("done", "failed")
ITEMS_EXPIRE_AT = "items_expire_at"  # on a job once its items carry their expiry


class JobRepository:
    def __init__(self, db: AsyncDatabase, items_retention_days: float = 7) -> None:
        self.jobs = db[IMPORTS]
        self.items = db[IMPORT_ITEMS]
        self.items_retention_days = items_retention_days

    async def ensure_indexes(self) -> None:
        await self.jobs.create_index([("status", ASCENDING), ("lease_until", ASCENDING), ("created_at", ASCENDING)])
        await self.items.create_index([("import_id", ASCENDING), ("index", ASCENDING)])
        await ensure_expiry_index(self.items)
        await self.expire_ended_items()

    async def expire_ended_items(self) -> int:
        """Give the items of ended jobs that have none yet (jobs that ended before retention existed, or whose
        process died between ending the job and dating its items) their expiry; the number of such jobs."""
        ended = self.jobs.find({"status": {"$in": list(ENDED)}, ITEMS_EXPIRE_AT: {"$exists": False}}, {"finished_at": 1, "updated_at": 1})
        n = 0
        async for job in ended:
            await self._expire_items(job["_id"], job.get("finished_at") or job["updated_at"])
            n += 1
        return n

    async def _expire_items(self, job_id: str, ended_at: datetime) -> None:
        until = expires(ended_at, self.items_retention_days)
        await self.items.update_many({"import_id": job_id}, {"$set": {EXPIRES_AT: until}})
        await self.jobs.update_one({"_id": job_id}, {"$set": {ITEMS_EXPIRE_AT: until}})

    async def create(self, job: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        doc = {
            **job,
            "status": "queued",
            "total": None,
            "processed": 0,
            "counts": {key: 0 for key in (*OUTCOMES, "annotations_sent", "annotation_events")},
            "warnings": [],
            "error": None,
            "lease_owner": None,
            "lease_until": NEVER,
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
        }
        await self.jobs.insert_one(doc)
        return doc

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return await self.jobs.find_one({"_id": job_id})

    async def page(self, limit: int, cursor: str | None = None, *, status: str | None = None, kind: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Jobs newest first, a page at a time (the next page's cursor, or None at the end)."""
        query = {k: v for k, v in (("status", status), ("kind", kind)) if v}
        return await newest_first(self.jobs, query, "created_at", limit, cursor)

    async def unfinished_ids(self) -> set[str]:
        """Jobs still queued or running (by any process)."""
        return {doc["_id"] async for doc in self.jobs.find({"status": {"$in": ["queued", "running"]}}, {"_id": 1})}

    async def claim(self, owner: str, lease_seconds: float) -> dict[str, Any] | None:
        now = utcnow()
        return await self.jobs.find_one_and_update(
            {"status": {"$in": ["queued", "running"]}, "lease_until": {"$lt": now}},
            {"$set": {"status": "running", "lease_owner": owner, "lease_until": now + timedelta(seconds=lease_seconds), "updated_at": now}},
            sort=[("created_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def renew(self, job_id: str, owner: str, lease_seconds: float, **fields: Any) -> bool:
        """Extend the lease (and set progress fields); False if another worker holds it now."""
        now = utcnow()
        result = await self.jobs.update_one(
            {"_id": job_id, "lease_owner": owner},
            {"$set": {"lease_until": now + timedelta(seconds=lease_seconds), "updated_at": now, **fields}},
        )
        return result.matched_count == 1

    async def finish(self, job_id: str, owner: str, status: str, **fields: Any) -> None:
        """End the job (if this owner still holds it), then date its items' expiry."""
        assert status in ENDED
        now = utcnow()
        ended = await self.jobs.update_one(
            {"_id": job_id, "lease_owner": owner},
            {"$set": {"status": status, "lease_until": NEVER, "lease_owner": None, "updated_at": now, "finished_at": now, **fields}},
        )
        if ended.matched_count:
            await self._expire_items(job_id, now)

    async def done_indexes(self, job_id: str) -> set[int]:
        cursor = self.items.find({"import_id": job_id}, {"index": 1, "_id": 0})
        return {doc["index"] async for doc in cursor}

    async def record_item(self, job_id: str, index: int, outcome: dict[str, Any]) -> None:
        try:
            await self.items.insert_one({"_id": f"{job_id}:{index}", "import_id": job_id, "index": index, **outcome})
        except DuplicateKeyError:
            pass  # recorded by a previous holder of the lease

    async def counts(self, job_id: str) -> tuple[int, dict[str, int]]:
        pipeline = [
            {"$match": {"import_id": job_id}},
            {"$group": {"_id": "$outcome", "n": {"$sum": 1}, "annotations": {"$sum": "$annotations"}, "events": {"$sum": "$events"}}},
        ]
        counts = {key: 0 for key in (*OUTCOMES, "annotations_sent", "annotation_events")}
        processed = 0
        async for row in await self.items.aggregate(pipeline):
            counts[row["_id"]] = row["n"]
            counts["annotations_sent"] += row["annotations"]
            counts["annotation_events"] += row["events"]
            processed += row["n"]
        return processed, counts
