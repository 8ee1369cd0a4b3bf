"""The worker-process pool that decoding and hashing run in, off the event loop.

Each job is bounded: in time (a worker that overruns is killed and the pool
replaced, so a pathological file cannot hold a core) and in memory (each
worker's address space is capped, so a huge allocation fails as MemoryError in
that worker instead of taking the machine down). Jobs that were in flight on a
pool that had to be replaced, or that crashed, are run again once on the new one.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, Callable

log = logging.getLogger(__name__)


class WorkerTimeout(Exception):
    """A job ran past its time bound; its worker was recycled."""


class WorkerCrashed(Exception):
    """A job's worker died (twice) while running it."""


def _owner_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"  # killed, not yet reaped
    except ProcessLookupError:
        return True
    except OSError:
        return False


def _watch_owner(pid: int) -> None:
    """Exit when the service process is gone (SIGKILL leaves pool workers blocked forever otherwise)."""
    while not _owner_gone(pid):
        time.sleep(1.0)
    os._exit(0)


def _init_worker(max_bytes: int | None, owner_pid: int) -> None:
    if max_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    threading.Thread(target=_watch_owner, args=(owner_pid,), daemon=True, name="owner-watch").start()


class CpuPool:
    def __init__(self, workers: int | None = None, *, memory_bytes: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.memory_bytes = memory_bytes
        self.recycled = 0
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: never fork the event-loop process with its threads and sockets.
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_worker,
            initargs=(self.memory_bytes, os.getpid()),
        )

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            pool = self._pool
            future = asyncio.get_running_loop().run_in_executor(pool, partial(fn, *args, **kwargs))
            try:
                return await asyncio.wait_for(future, timeout)
            except TimeoutError:
                self._recycle(pool, "a job overran its time bound")
                raise WorkerTimeout(f"gave up after {timeout} s") from None
            except BrokenProcessPool:
                self._recycle(pool, "a worker died")
                if attempt == 2:
                    raise WorkerCrashed("the worker process died while decoding") from None
        raise AssertionError("unreachable")

    def _recycle(self, pool: ProcessPoolExecutor, why: str) -> None:
        if pool is not self._pool:
            return  # another job already replaced it
        log.warning("recycling the worker pool", extra={"why": why})
        self.recycled += 1
        self._pool = self._new_pool()
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
