"""Admin jobs (reindex, reconcile) run in the background of one process, with progress to poll."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.search.maintenance import Progress

log = logging.getLogger(__name__)
KEEP = 50


class Job(BaseModel):
    """An admin job and how far it got."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: str
    state: Literal["running", "succeeded", "failed"] = "running"
    phase: str = "starting"
    done: int = 0
    total: int | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


class JobRegistry:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task] = set()

    def running(self, kind: str) -> Job | None:
        return next((job for job in self.jobs.values() if job.kind == kind and job.state == "running"), None)

    def start(self, kind: str, work: Callable[[Progress], Awaitable[dict[str, Any]]]) -> Job:
        job = Job(kind=kind)
        self.jobs[job.id] = job
        for old in [j for j in self.jobs.values() if j.state != "running"][:-KEEP]:
            self.jobs.pop(old.id, None)

        def progress(phase: str, done: int, total: int | None) -> None:
            job.phase, job.done, job.total = phase, done, total

        async def run() -> None:
            try:
                job.result = await work(progress)
                job.state = "succeeded"
            except Exception as exc:  # noqa: BLE001 - reported on the job resource and in the log
                log.exception("%s job failed", kind)
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                job.finished_at = datetime.now(UTC)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
