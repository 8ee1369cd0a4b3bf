"""Group commit: images that arrive one at a time share groups while earlier groups are being stored."""

import asyncio

import pytest

from services.ingest.service import GroupCommit


class SlowStore:
    """A store whose groups finish only when the test says so; it records the groups it was given."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.release = asyncio.Event()

    async def __call__(self, deps, items):
        self.groups.append(list(items))
        await self.release.wait()
        if "bad" in items:
            raise ConnectionError("the store is away")
        return [f"stored {item}" for item in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_images_that_wait_for_a_running_group_go_together_and_each_caller_gets_its_own_result():
    store = SlowStore()
    commit = GroupCommit(store, max_group=3, in_flight=1)
    first = asyncio.create_task(commit.store(None, "a"))
    await _settle()
    assert store.groups == [["a"]]  # idle: stored at once, alone
    waiting = [asyncio.create_task(commit.store(None, name)) for name in ("b", "c", "d", "e")]
    await _settle()
    assert store.groups == [["a"]]  # the others wait for the running group
    store.release.set()
    results = await asyncio.gather(first, *waiting)
    assert results == ["stored a", "stored b", "stored c", "stored d", "stored e"]
    assert store.groups == [["a"], ["b", "c", "d"], ["e"]]  # at most max_group together, in arrival order


async def test_a_failed_group_fails_each_of_its_callers_and_the_next_group_still_runs():
    store = SlowStore()
    commit = GroupCommit(store, max_group=8, in_flight=1)
    blocker = asyncio.create_task(commit.store(None, "a"))
    await _settle()
    doomed = [asyncio.create_task(commit.store(None, name)) for name in ("b", "bad")]
    await _settle()
    store.release.set()
    assert await blocker == "stored a"
    for task in doomed:
        with pytest.raises(ConnectionError):
            await task
    assert await commit.store(None, "f") == "stored f"


async def test_a_batch_handed_over_at_once_goes_as_one_group_and_its_failure_is_raised_once():
    store = SlowStore()
    commit = GroupCommit(store, max_group=3, in_flight=1)
    single = asyncio.create_task(commit.store(None, "a"))
    await _settle()
    batch = asyncio.create_task(commit.store_all(None, ["b", "c", "d"]))
    failing = asyncio.create_task(commit.store_all(None, ["e", "bad"]))
    await _settle()
    store.release.set()
    assert await single == "stored a"
    assert await batch == ["stored b", "stored c", "stored d"]
    with pytest.raises(ConnectionError):
        await failing
    assert store.groups == [["a"], ["b", "c", "d"], ["e", "bad"]]
