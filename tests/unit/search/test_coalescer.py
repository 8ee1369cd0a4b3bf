"""Concurrent handlers share one bulk projection, and each sees its failure."""

import asyncio

from services.search.projection import Coalescer


async def test_concurrent_submissions_flush_together():
    flushed: list[set[str]] = []

    async def flush(ids):
        flushed.append(set(ids))

    coalescer = Coalescer(flush, max_batch=100, max_wait=0.01)
    await asyncio.gather(*(coalescer.submit([f"img{i}"]) for i in range(10)))
    assert flushed == [{f"img{i}" for i in range(10)}]


async def test_a_full_batch_flushes_at_once_and_failures_reach_every_waiter():
    calls: list[set[str]] = []

    async def flush(ids):
        calls.append(set(ids))
        raise RuntimeError("es down")

    coalescer = Coalescer(flush, max_batch=2, max_wait=60)
    results = await asyncio.gather(coalescer.submit(["a"]), coalescer.submit(["b"]), return_exceptions=True)
    assert calls == [{"a", "b"}]
    assert all(isinstance(r, RuntimeError) for r in results)
