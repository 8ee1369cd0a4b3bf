"""Admin jobs (reindex, reconcile): run in the background of the process that started them, kept in MongoDB.

Any replica answers ``GET /v1/admin/jobs/{id}``, not only the one running the
job: the runner writes the job's phase and counts every ``HEARTBEAT_SECONDS``
and its outcome at the end. One maintenance job runs at a time across all
replicas: a running job holds the ``lock`` of a unique index that only covers
running jobs, so a second start is refused (409) wherever it is asked. A job
whose process died stops beating; once its heartbeat is ``STALE_SECONDS`` old
it is reported failed (``abandoned``) and no longer holds the lock. Finished
jobs are kept for ``KEEP_DAYS`` (a TTL index).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.search.maintenance import Progress, Work

log = logging.getLogger(__name__)

JOBS = "search_jobs"
LOCK = "maintenance"
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 30.0
KEEP_DAYS = 30


def _now() -> datetime:
    return datetime.now(UTC)


class Job(BaseModel):
    """An admin job and how far it got."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: str
    state: Literal["running", "succeeded", "failed"] = "running"
    phase: str = "starting"
    done: int = 0
    total: int | None = None
    started_at: datetime = Field(default_factory=_now)
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    owner: str | None = None  # the process running it

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Job:
        return cls.model_validate({**doc, "id": doc["_id"]})


class JobRunning(Exception):
    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is running")
        self.job = job


class JobRegistry:
    def __init__(self, db: AsyncDatabase, owner: str | None = None) -> None:
        self.jobs = db[JOBS]
        self.owner = owner or f"search-{uuid.uuid4().hex[:12]}"
        self._tasks: set[asyncio.Task] = set()

    async def ensure_indexes(self) -> None:
        await self.jobs.create_index("lock", unique=True, partialFilterExpression={"state": "running"})
        await self.jobs.create_index("finished_at", expireAfterSeconds=KEEP_DAYS * 24 * 3600)
        await self.jobs.create_index([("started_at", DESCENDING)])

    async def get(self, job_id: str) -> Job | None:
        doc = await self.jobs.find_one({"_id": job_id})
        if doc is None:
            return None
        if doc["state"] == "running" and await self._abandon_if_stale(doc):
            doc = await self.jobs.find_one({"_id": job_id})
        return Job.of(doc)

    async def start(self, kind: str, work: Work) -> Job:
        """Record and start a job; JobRunning when another maintenance job runs (on any replica)."""
        job = await self._claim(kind)
        task = asyncio.get_running_loop().create_task(self._run(job, work), name=f"search-job-{kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def run(self, kind: str, work: Work, progress: Progress | None = None) -> Job:
        """Record a job and run it here to its end (the CLI), under the same lock as the service's jobs;
        JobRunning as for :meth:`start`. ``progress`` also hears of its phases."""
        job = await self._claim(kind)
        await self._run(job, work, also=progress)
        return job

    async def _claim(self, kind: str) -> Job:
        """Record a running job, taking the maintenance lock."""
        job = Job(kind=kind, owner=self.owner)
        while True:
            try:
                await self.jobs.insert_one(
                    {**job.model_dump(exclude={"id"}), "_id": job.id, "lock": LOCK, "heartbeat_at": _now()}
                )
                break
            except DuplicateKeyError:
                current = await self.jobs.find_one({"lock": LOCK, "state": "running"})
                if current is not None and not await self._abandon_if_stale(current):
                    raise JobRunning(Job.of(current)) from None
        return job

    async def _run(self, job: Job, work: Work, also: Progress | None = None) -> None:
        def progress(phase: str, done: int, total: int | None) -> None:
            job.phase, job.done, job.total = phase, done, total
            if also is not None:
                also(phase, done, total)

        beating = asyncio.get_running_loop().create_task(self._beat(job))
        try:
            job.result = await work(progress)
            job.state = "succeeded"
        except asyncio.CancelledError:
            job.state, job.error = "failed", "stopped: the search service shut down while it ran"
            raise
        except Exception as exc:  # noqa: BLE001 - reported on the job resource and in the log
            log.exception("%s job failed", job.kind)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            job.finished_at = _now()
            with contextlib.suppress(Exception):  # the store away: the job goes stale and is reported abandoned
                await asyncio.shield(self._write(job))

    async def _beat(self, job: Job) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._write(job)
            except Exception:  # noqa: BLE001 - the next beat tries again
                log.warning("job heartbeat not written", exc_info=True)

    async def _write(self, job: Job) -> None:
        fields = job.model_dump(include={"state", "phase", "done", "total", "finished_at", "result", "error"})
        await self.jobs.update_one({"_id": job.id, "owner": self.owner}, {"$set": {**fields, "heartbeat_at": _now()}})

    async def _abandon_if_stale(self, doc: dict[str, Any]) -> bool:
        """Mark a running job whose heartbeat stopped as failed; True if it is no longer running."""
        if doc["heartbeat_at"].replace(tzinfo=UTC) > _now() - timedelta(seconds=STALE_SECONDS):
            return False
        await self.jobs.update_one(
            {"_id": doc["_id"], "state": "running", "heartbeat_at": doc["heartbeat_at"]},
            {"$set": {"state": "failed", "error": f"abandoned: its process ({doc.get('owner')}) stopped reporting", "finished_at": _now()}},
        )
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
