"""The worker-process pool that decoding and hashing run in, off the event loop.

Each job is bounded: in time (a worker that overruns is killed and the pool
replaced, so a pathological file cannot hold a core) and in memory (each
worker's address space is capped, so a huge allocation fails as MemoryError in
that worker instead of taking the machine down). Jobs that were in flight on a
pool that had to be replaced, or that crashed, are run again on the new one.

Jobs travel in chunks. Handing a process pool one job at a time costs thread
hand-offs in this process and a lock and a wake-up in the worker, each way:
probing the COCO photos that way took 0.85-0.9 ms of this process's CPU per
image and 0.3-0.7 ms more in the workers than in chunks, where this process
spends 0.3 ms. So the pool keeps one chunk per worker in flight (plus one
queued) and sends whatever has queued up meanwhile as the next chunk (up to
8 jobs, 4 MiB): an idle pool runs a job at once, a busy one sends several
per hand-off. A chunk that fails as a whole is split, so only the job at fault
gets the timeout or the crash: after an overrun its jobs run again one per
chunk; after a worker died, each of the jobs that were in the pool runs
again with nothing else beside it. An exception a job raises is its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from shared.owner_watch import owned_process_pool
from shared.unavailable import DependencyUnavailable  # not shared.outages: workers import this module

log = logging.getLogger(__name__)

CHUNK_JOBS = 8
CHUNK_BYTES = 4 * 1024**2  # bigger inputs go alone: one slow image should not hold up others in its chunk


class WorkerTimeout(Exception):
    """A job ran past its time bound; its worker was recycled."""


class WorkerCrashed(Exception):
    """A job's worker died (twice) while running it."""


class WorkersStopped(DependencyUnavailable):
    """The pool was closed (the service is stopping): the job is not the image's fault; try it again later,
    in this process's successor (a consumer returns its message to the queue)."""

    store = "the ingest worker pool (the service is stopping)"


def _limit_memory(max_bytes: int | None) -> None:
    if max_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def _run_chunk(calls: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    """In a worker: every call's (True, result) or (False, the exception it raised)."""
    outcomes: list[tuple[bool, Any]] = []
    for call in calls:
        try:
            outcomes.append((True, call()))
        except Exception as exc:  # noqa: BLE001 - the job's own failure, handed back to its caller
            outcomes.append((False, exc))
    return outcomes


def _payload_bytes(args: tuple[Any, ...]) -> int:
    return sum(len(a) for a in args if isinstance(a, (bytes, bytearray, memoryview)))


@dataclass(eq=False)
class _Job:
    call: Callable[[], Any]
    timeout: float | None
    size: int
    future: asyncio.Future[Any]
    alone: bool = False  # in a chunk of its own: its chunk overran, and the job at fault is to be found
    isolated: bool = False  # with nothing else in the pool: it was there when a worker died
    crashes: int = 0  # worker deaths while it ran isolated (the second is its own failure)


@dataclass(eq=False)
class _Chunk:
    jobs: list[_Job] = field(default_factory=list)

    @property
    def timeout(self) -> float | None:
        bounds = [job.timeout for job in self.jobs]
        return None if None in bounds else max(b for b in bounds if b is not None)

    @property
    def isolated(self) -> bool:
        return len(self.jobs) == 1 and self.jobs[0].isolated


class CpuPool:
    def __init__(self, workers: int | None = None, *, memory_bytes: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.memory_bytes = memory_bytes
        self.recycled = 0
        self.chunks_sent = 0
        self._pool = self._new_pool()
        self._waiting: deque[_Job] = deque()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._isolating = False
        self._closed = False

    def _new_pool(self) -> ProcessPoolExecutor:
        return owned_process_pool(self.workers, _limit_memory, self.memory_bytes)  # a killed service's workers leave too

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        if self._closed:
            raise WorkersStopped("the worker pool is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Job(partial(fn, *args, **kwargs), timeout, _payload_bytes(args), future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        """Send chunks while a worker is free (or about to be); an isolated job waits for an empty pool and keeps it."""
        while self._waiting and not self._isolating:
            job = self._waiting[0]
            if job.future.done():  # its caller gave up while it waited
                self._waiting.popleft()
                continue
            if job.isolated:
                if self._in_flight:
                    return
                self._isolating = True
                self._start(_Chunk([self._waiting.popleft()]))
                return
            if len(self._in_flight) > self.workers:
                return
            self._start(self._next_chunk())

    def _next_chunk(self) -> _Chunk:
        chunk, size = _Chunk(), 0
        while self._waiting:
            job = self._waiting[0]
            if job.isolated:
                break  # _dispatch sends it when the pool is empty
            alone = job.alone or job.size > CHUNK_BYTES
            if chunk.jobs and (alone or len(chunk.jobs) >= CHUNK_JOBS or size + job.size > CHUNK_BYTES):
                break
            self._waiting.popleft()
            if not job.future.done():
                chunk.jobs.append(job)
                size += job.size
            if alone:
                break
        return chunk

    def _start(self, chunk: _Chunk) -> None:
        if not chunk.jobs:
            return
        task = asyncio.get_running_loop().create_task(self._send(chunk))
        self._in_flight.add(task)
        task.add_done_callback(partial(self._sent, chunk))

    def _sent(self, chunk: _Chunk, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if chunk.isolated:
            self._isolating = False
        if not task.cancelled() and task.exception() is not None:
            log.error("a worker chunk failed unexpectedly", exc_info=task.exception())
        self._dispatch()

    async def _send(self, chunk: _Chunk) -> None:
        try:
            await self._run(chunk)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            if self._closed:  # the pool shut down under it: "cannot schedule new futures after shutdown"
                exc = WorkersStopped(f"the worker pool closed: {exc}")
            for job in chunk.jobs:
                _settle(job.future, False, exc if isinstance(exc, Exception) else WorkerCrashed("the pool stopped"))
            if not self._closed:
                raise

    async def _run(self, chunk: _Chunk) -> None:
        pool = self._pool
        self.chunks_sent += 1
        future = asyncio.get_running_loop().run_in_executor(pool, _run_chunk, [job.call for job in chunk.jobs])
        try:
            outcomes = await asyncio.wait_for(future, chunk.timeout)
        except TimeoutError:
            self._recycle(pool, "a job overran its time bound")
            self._overran(chunk)
        except BrokenProcessPool:
            self._recycle(pool, "a worker died")
            self._lost_worker(chunk)
        except Exception as exc:  # noqa: BLE001 - e.g. a result that would not pickle: each job tries alone
            if len(chunk.jobs) == 1:
                _settle(chunk.jobs[0].future, False, exc)
            else:
                self._retry(chunk.jobs, alone=True)
        else:
            for job, (ok, value) in zip(chunk.jobs, outcomes, strict=True):
                _settle(job.future, ok, value)

    def _overran(self, chunk: _Chunk) -> None:
        """Past its time bound: a job alone has failed; a chunk's jobs run again alone to find which one overran."""
        if len(chunk.jobs) == 1:
            _settle(chunk.jobs[0].future, False, WorkerTimeout(f"gave up after {chunk.timeout} s"))
        else:
            self._retry(chunk.jobs, alone=True)

    def _lost_worker(self, chunk: _Chunk) -> None:
        """A worker died (or was killed with its pool): its jobs run again, each with nothing beside it.

        Only a job running alone in the pool can be blamed for a death; it is given
        one more try (the death may have had another cause), then fails.
        """
        if chunk.isolated:
            job = chunk.jobs[0]
            job.crashes += 1
            if job.crashes >= 2:
                _settle(job.future, False, WorkerCrashed("the worker process died while decoding"))
                return
        self._retry(chunk.jobs, isolated=True)

    def _retry(self, jobs: list[_Job], *, alone: bool = False, isolated: bool = False) -> None:
        for job in reversed(jobs):
            job.alone = job.alone or alone
            job.isolated = job.isolated or isolated
            self._waiting.appendleft(job)

    def _recycle(self, pool: ProcessPoolExecutor, why: str) -> None:
        if pool is not self._pool:
            return  # another chunk already replaced it
        log.warning("recycling the worker pool", extra={"why": why})
        self.recycled += 1
        self._pool = self._new_pool()
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._closed = True
        for job in self._waiting:
            _settle(job.future, False, WorkersStopped("the worker pool closed before the job started"))
        self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
