"""A background pass that runs when nudged, or every ``poll_seconds`` otherwise.

The outbox relay and ingest's import worker are both this: do one pass; if it
says more work is waiting, go again at once; if it fails, log and try on the
next pass (the work it left is still in MongoDB); then wait for a nudge or
the poll interval, whichever comes first. With ``gather_seconds``, a nudge
starts the pass that much later, so a burst of nudges (one per committed
write) is served by one pass instead of one pass each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# One pass; returns True when more work is waiting and the next pass should start at once.
Pass = Callable[[], Awaitable[bool]]


class PollingLoop:
    def __init__(
        self, name: str, run_pass: Pass, *, poll_seconds: float, gather_seconds: float = 0.0, wait_first: bool = False
    ) -> None:
        self.name = name
        self.run_pass = run_pass
        self.poll_seconds = poll_seconds
        self.gather_seconds = gather_seconds
        self.wait_first = wait_first  # the first pass comes after one poll interval (or a nudge), not at start
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def nudge(self) -> None:
        """Something new is waiting: run a pass now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """End the loop: a pass under way is cancelled; a wait ends at once.

        The flag, not the cancel alone, is what ends it: Python 3.11's ``wait_for`` returns the
        result of what it waited for when a cancel arrives as that completes (a nudge just before
        ``stop``), and the cancel is lost. The loop then sees the flag instead.
        """
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        if self.wait_first:
            await self._wait()
        while not self._stopping:
            self._wake.clear()
            try:
                more = await self.run_pass()
            except Exception:  # noqa: BLE001 - a store away: the work stays in MongoDB for the next pass
                log.exception("%s pass failed; will retry", self.name)
                more = False
            if not more and not self._stopping:
                await self._wait()

    async def _wait(self) -> None:
        """Until a nudge (then the gather window) or the poll interval, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            if self.gather_seconds:
                await asyncio.sleep(self.gather_seconds)


class LoopDriven:
    """A component whose background work is one :class:`PollingLoop` (``self._loop``): started and stopped with it."""

    _loop: PollingLoop

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
