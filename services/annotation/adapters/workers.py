"""The annotation service's worker processes: a process pool that replaces itself when a worker dies.

A ``ProcessPoolExecutor`` whose worker is killed (by the kernel for memory, by a crash in a C extension)
is broken for good: every later job fails at once. Geometry checks of polygons, masks and imports go
through this pool, so one dead worker would fail every such create until a restart, and park every
import event with polygons. Here the job that was running when the worker died fails as an outage
(:class:`WorkersLost`: an HTTP 503 with Retry-After, a message retried without counting an attempt),
and the next job gets a fresh pool.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from shared.owner_watch import owned_process_pool
from shared.unavailable import DependencyUnavailable

log = logging.getLogger(__name__)


class WorkersLost(DependencyUnavailable):
    """A worker process died under the job; the pool has been replaced: try again."""

    store = "the annotation worker pool (a worker died; replaced)"


class RenewingProcessPool(Executor):
    def __init__(self, workers: int | None) -> None:
        self._workers = workers
        self._lock = threading.Lock()
        self._pool = self._new()
        self.renewed = 0

    def _new(self) -> ProcessPoolExecutor:
        return owned_process_pool(self._workers)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        pool = self._pool
        try:
            future = pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            pool = self._renew(pool)
            future = pool.submit(fn, *args, **kwargs)
        future.add_done_callback(lambda done: self._renew_if_broken(pool, done))
        return future

    def _renew_if_broken(self, pool: ProcessPoolExecutor, future: Future) -> None:
        if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
            self._renew(pool)

    def _renew(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is broken:  # once per broken pool, whoever notices first
                log.warning("a worker process died; replacing the worker pool")
                self._pool, self.renewed = self._new(), self.renewed + 1
                broken.shutdown(wait=False, cancel_futures=True)
            return self._pool

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
