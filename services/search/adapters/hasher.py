"""A small process pool that hashes uploaded query images off the event loop."""

from __future__ import annotations

import asyncio

from services.search.domain.hashing import hash_image
from shared.owner_watch import owned_process_pool


class Hasher:
    def __init__(self, workers: int) -> None:
        self._pool = owned_process_pool(workers)

    async def hashes(self, data: bytes) -> dict[str, str]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, hash_image, data)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
