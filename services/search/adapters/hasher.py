"""A small process pool that hashes uploaded query images off the event loop."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from services.search.domain.hashing import hash_image


class Hasher:
    def __init__(self, workers: int) -> None:
        # forkserver: never fork the event-loop process with its threads and sockets.
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))

    async def hashes(self, data: bytes) -> dict[str, str]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, hash_image, data)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
