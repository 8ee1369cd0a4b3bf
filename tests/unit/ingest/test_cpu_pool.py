"""The worker pool's bounds: a job over its time is abandoned and its worker replaced; memory is capped.

Jobs travel in chunks when the pool is busy; a job that raises, hangs or kills its worker fails alone.
"""

import asyncio
import os
import time

import pytest

from services.ingest.adapters.cpu import CpuPool, WorkerCrashed, WorkerTimeout


def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def hungry(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


async def test_overrunning_job_is_abandoned_and_the_pool_keeps_working():
    pool = CpuPool(1, memory_bytes=1024**3)
    try:
        with pytest.raises(WorkerTimeout):
            await pool.run(sleepy, 60, timeout=0.5)
        assert pool.recycled == 1
        assert await pool.run(sleepy, 0, timeout=30) == "woke"
    finally:
        pool.close()


async def test_memory_cap_turns_a_huge_allocation_into_memory_error():
    pool = CpuPool(1, memory_bytes=512 * 1024**2)
    try:
        with pytest.raises(MemoryError):
            await pool.run(hungry, 2048, timeout=30)
        assert await pool.run(hungry, 16, timeout=30) == 16 * 1024 * 1024
    finally:
        pool.close()


def echo(value: int) -> int:
    return value


def fail_on(value: int, bad: int) -> int:
    if value == bad:
        raise ValueError(f"refused {value}")
    return value


def crash_on(value: int, bad: int) -> int:
    if value == bad:
        os._exit(3)  # the worker process dies, as a decoder crash would take it down
    return value


def hang_on(value: int, bad: int) -> int:
    if value == bad:
        time.sleep(60)
    return value


async def run_all(pool: CpuPool, fn, count: int, *args, timeout: float = 30) -> list:
    return await asyncio.gather(*(pool.run(fn, n, *args, timeout=timeout) for n in range(count)), return_exceptions=True)


def only_the_bad_one_failed(results: list, bad: int, error: type[Exception]) -> bool:
    """Job ``bad`` raised ``error``; every other job returned its own number."""
    others = [r for n, r in enumerate(results) if n != bad]
    return isinstance(results[bad], error) and others == [n for n in range(len(results)) if n != bad]


@pytest.fixture
def pool():
    """Two workers, shut down after the test."""
    two = CpuPool(2)
    yield two
    two.close()


async def test_a_busy_pool_sends_jobs_in_chunks_and_each_caller_gets_its_own_result(pool):
    assert await run_all(pool, echo, 64) == list(range(64))
    # 3 chunks go at once (one per worker and one queued); the other 61 jobs follow 8 at a time.
    assert pool.chunks_sent <= 3 + 8


async def test_an_idle_pool_runs_a_job_at_once(pool):
    for n in range(3):
        assert await pool.run(echo, n, timeout=30) == n
    assert pool.chunks_sent == 3


async def test_a_job_that_raises_fails_alone(pool):
    results = await run_all(pool, fail_on, 20, 5)
    assert only_the_bad_one_failed(results, 5, ValueError) and str(results[5]) == "refused 5"
    assert pool.recycled == 0


async def test_a_job_that_kills_its_worker_fails_alone_and_the_pool_recovers(pool):
    results = await run_all(pool, crash_on, 20, 5)
    assert only_the_bad_one_failed(results, 5, WorkerCrashed)
    assert pool.recycled >= 2  # the chunk, then the job alone (retried once)
    assert await pool.run(echo, 7, timeout=30) == 7


async def test_a_job_that_overruns_in_a_chunk_times_out_alone():
    pool = CpuPool(1)
    try:
        results = await run_all(pool, hang_on, 10, 3, timeout=1.0)
        assert only_the_bad_one_failed(results, 3, WorkerTimeout)
    finally:
        pool.close()
