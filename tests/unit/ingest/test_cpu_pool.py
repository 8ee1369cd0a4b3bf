"""The worker pool's bounds: a job over its time is abandoned and its worker replaced; memory is capped."""

import time

import pytest

from services.ingest.adapters.cpu import CpuPool, WorkerTimeout


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
