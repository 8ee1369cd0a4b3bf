"""The polling loop behind the outbox relay, the import worker, the drain and the orphan sweeper: nudges, polls,
bursts, failures, a first pass that waits."""

import asyncio

from shared.background import PollingLoop


async def _settle(passes: list[int], count: int) -> None:
    for _ in range(200):
        if len(passes) >= count:
            return
        await asyncio.sleep(0.01)


async def test_a_burst_of_nudges_is_served_by_one_pass_when_gathering():
    passes: list[int] = []

    async def run_pass() -> bool:
        passes.append(len(passes))
        return False

    loop = PollingLoop("test", run_pass, poll_seconds=60, gather_seconds=0.2)
    loop.start()
    try:
        await _settle(passes, 1)  # the first pass runs at start
        for _ in range(10):  # ten commits in quick succession
            loop.nudge()
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.4)
        assert len(passes) == 2
    finally:
        await loop.stop()


async def test_without_gathering_a_nudge_runs_a_pass_at_once_and_a_failed_pass_is_retried():
    passes: list[int] = []

    async def run_pass() -> bool:
        passes.append(len(passes))
        if len(passes) == 2:
            raise ConnectionError("store away")
        return len(passes) == 3  # "more is waiting" once: the next pass follows without a nudge

    loop = PollingLoop("test", run_pass, poll_seconds=60)
    loop.start()
    try:
        await _settle(passes, 1)
        loop.nudge()
        await _settle(passes, 2)  # this one fails; the loop lives on
        loop.nudge()
        await _settle(passes, 4)
        assert passes == [0, 1, 2, 3]
    finally:
        await loop.stop()


async def test_waiting_first_the_first_pass_comes_after_one_interval_not_at_start():
    passes: list[int] = []

    async def run_pass() -> bool:
        passes.append(len(passes))
        return False

    loop = PollingLoop("test", run_pass, poll_seconds=0.3, wait_first=True)
    loop.start()
    try:
        await asyncio.sleep(0.1)
        assert passes == []  # nothing at start
        await _settle(passes, 1)
        assert passes == [0]
    finally:
        await loop.stop()


async def test_stop_right_after_a_nudge_ends_the_loop():
    """Python 3.11's wait_for returns the waited-for result, swallowing a cancel that arrives as it completes:
    a nudge just before stop() (a drain's last move nudges the relay) once left stop() waiting a whole poll."""
    passes: list[int] = []

    async def run_pass() -> bool:
        passes.append(len(passes))
        return False

    loop = PollingLoop("test", run_pass, poll_seconds=3600)
    loop.start()
    await _settle(passes, 1)  # waiting for a nudge or the hour's poll
    loop.nudge()
    stopping = asyncio.ensure_future(loop.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)  # a guard against hanging the suite, not a speed check
    assert stopping in done
    assert loop._task is not None and loop._task.done()
