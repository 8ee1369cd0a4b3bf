"""Ingesting a stream of images in groups: each is probed as it arrives, and stored with its group
through the service's group commit (``IngestDeps.groups``), which bounds the groups being stored.

Back-pressure both ways: the reader waits while ``probing`` images are in the
worker pool, and while two groups are being stored, so a huge batch never
holds more than a few groups of bytes in memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from services.ingest.domain.errors import ImageRefused
from services.ingest.service import IngestDeps, Outcome, Prepared, Submission, prepare

GROUPS_IN_FLIGHT = 2

Result = Outcome | ImageRefused


@dataclass
class _Group:
    prepares: list[asyncio.Task[Prepared]] = field(default_factory=list)
    results: list[asyncio.Future[Result]] = field(default_factory=list)


class GroupIngest:
    def __init__(self, deps: IngestDeps, *, group_size: int, probing: int) -> None:
        self.deps = deps
        self.group_size = group_size
        self._probing = asyncio.Semaphore(probing)
        self._groups = asyncio.Semaphore(GROUPS_IN_FLIGHT)
        self._group = _Group()
        self._storing: list[asyncio.Task[None]] = []

    async def add(self, submission: Submission) -> asyncio.Future[Result]:
        """Start probing the image; the future gives its outcome, or the refusal (already recorded)."""
        await self._probing.acquire()
        task = asyncio.create_task(self._prepare(submission))
        result: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._group.prepares.append(task)
        self._group.results.append(result)
        if len(self._group.prepares) >= self.group_size:
            await self._start_group()
        return result

    async def finish(self) -> None:
        """Store what is left and wait for every group (also after a failed read: nothing is left running)."""
        if self._group.prepares:
            await self._start_group()
        await asyncio.gather(*self._storing)

    async def _prepare(self, submission: Submission) -> Prepared:
        try:
            return await prepare(self.deps, submission)
        finally:
            self._probing.release()

    async def _start_group(self) -> None:
        await self._groups.acquire()
        group, self._group = self._group, _Group()
        self._storing.append(asyncio.create_task(self._store(group)))

    async def _store(self, group: _Group) -> None:
        """Settle every future of the group: outcome, refusal, or the error that stopped the group."""
        try:
            prepared = await asyncio.gather(*group.prepares, return_exceptions=True)
            ready: list[tuple[asyncio.Future[Result], Prepared]] = []
            for future, item in zip(group.results, prepared, strict=True):
                if isinstance(item, Prepared):
                    ready.append((future, item))
                elif isinstance(item, ImageRefused):
                    future.set_result(item)
                else:
                    future.set_exception(item)
            try:
                stored = await self.deps.groups.store_all(self.deps, [item for _, item in ready])
            except Exception as exc:  # noqa: BLE001 - each image's waiter re-raises it
                for future, _ in ready:
                    future.set_exception(exc)
            else:
                for (future, _), outcome in zip(ready, stored, strict=True):
                    future.set_result(outcome)
        finally:
            self._groups.release()
