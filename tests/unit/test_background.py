"""The polling loop behind the outbox relay, the import worker, the drain and the orphan sweeper: nudges, polls,
bursts, failures, a first pass that waits."""

import asyncio
import contextlib

from shared.background import PollingLoop
from tests.conftest import eventually


async def _settle(passes: list[int], count: int) -> None:
    """Until ``count`` passes have run. It gave up quietly after 2 s, as long as the back-off the outage test
    waits out: a slow host failed a later assertion instead, far from the cause."""
    await eventually(lambda: asyncio.sleep(0, len(passes) >= count), interval=0.01)


async def test_a_burst_of_nudges_is_served_by_one_pass_when_gathering():
    passes: list[int] = []

    async def run_pass() -> bool:
        passes.append(len(passes))
        return False

    # The gathering time is far longer than the burst: on a slow host ten 5 ms sleeps can outlast 0.2 s.
    loop = PollingLoop("test", run_pass, poll_seconds=60, gather_seconds=2.0)
    loop.start()
    try:
        await _settle(passes, 1)  # the first pass runs at start
        for _ in range(10):  # ten commits in quick succession; without gathering, each would wake a pass
            loop.nudge()
            await asyncio.sleep(0.005)
        assert len(passes) == 1  # still gathering
        await _settle(passes, 2)
        await asyncio.sleep(0.1)  # a pass for another nudge would follow at once
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


@contextlib.asynccontextmanager
async def _logged_loop(caplog, name, run_pass):
    loop = PollingLoop(name, run_pass, poll_seconds=60)
    with caplog.at_level("INFO", logger="shared.background"):
        loop.start()
        try:
            yield loop
        finally:
            await loop.stop()


async def test_while_a_store_is_away_nudges_do_not_spin_the_loop_and_the_outage_is_one_warning(caplog):
    """Every commit nudges the relay; with RabbitMQ away each pass fails. Without back-off the loop ran a
    pass (and logged a line per event) for every nudge: thousands of lines a second in a chaos run."""
    from shared.bus import BusUnavailable

    passes: list[int] = []
    away = True

    async def run_pass() -> bool:
        passes.append(len(passes))
        if away:
            raise BusUnavailable("RabbitMQ is not connected")
        return False

    async with _logged_loop(caplog, "relay-probe", run_pass) as loop:
        started = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - started < 1.0:  # a commit every 10 ms for a second
            loop.nudge()
            await asyncio.sleep(0.01)
        failed = len(passes)
        away = False
        await _settle(passes, failed + 1)  # tried again after the back-off, without a nudge
    assert 2 <= failed <= 4  # 0.25 s, 0.5 s, 1 s apart: not one pass per nudge
    records = [r for r in caplog.records if r.name == "shared.background"]
    warnings = [r for r in records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "RabbitMQ is unavailable" in warnings[0].getMessage() and warnings[0].exc_info is None
    assert not [r for r in records if r.levelname == "ERROR"]
    assert any("succeed again" in r.getMessage() for r in records if r.levelname == "INFO")


async def test_a_failure_that_is_not_an_outage_keeps_its_traceback(caplog):
    passes: list[int] = []

    async def run_pass() -> bool:
        passes.append(len(passes))
        if len(passes) == 1:
            raise KeyError("a bug")
        return False

    async with _logged_loop(caplog, "bug-probe", run_pass):
        await _settle(passes, 2)
    [error] = [r for r in caplog.records if r.name == "shared.background" and r.levelname == "ERROR"]
    assert error.exc_info is not None and isinstance(error.exc_info[1], KeyError)


async def test_a_cancel_from_inside_a_pass_is_a_failure_not_the_end_of_the_loop():
    """aiormq cancels the confirms a relay pass awaits when it drops its connection: the loop must live on."""
    passes: list[int] = []

    async def run_pass() -> bool:
        passes.append(len(passes))
        if len(passes) == 1:
            pending = asyncio.get_running_loop().create_future()
            pending.cancel()  # as a library cancels a future it handed out
            await pending
        return False

    loop = PollingLoop("cancel-probe", run_pass, poll_seconds=60)
    loop.start()
    try:
        await _settle(passes, 2)  # passed again after the back-off
        assert len(passes) == 2 and not loop._task.done()
    finally:
        await loop.stop()
    assert loop._task.done()  # and stop() still ends it
