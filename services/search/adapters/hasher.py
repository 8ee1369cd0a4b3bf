"""A small process pool that hashes uploaded query images off the event loop."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from services.search.domain.hashing import hash_image
from shared.owner_watch import watch_owner


class Hasher:
    def __init__(self, workers: int) -> None:
        # forkserver: never fork the event-loop process with its threads and sockets. Each worker watches this
        # process and leaves once it is gone (killed: no shutdown reaches the pool), see shared.owner_watch.
        self._pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("forkserver"), initializer=watch_owner, initargs=(os.getpid(),)
        )

    async def hashes(self, data: bytes) -> dict[str, str]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, hash_image, data)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
