"""The worker-process pool that decoding and hashing run in, off the event loop."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any, Callable


class CpuPool:
    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        # forkserver: never fork the event-loop process with its threads and sockets.
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("forkserver"))

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
