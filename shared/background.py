"""A background pass that runs when nudged, or every ``poll_seconds`` otherwise.

The outbox relay and ingest's import worker are both this: do one pass; if it
says more work is waiting, go again at once; then wait for a nudge or the poll
interval, whichever comes first. With ``gather_seconds``, a nudge starts the
pass that much later, so a burst of nudges (one per committed write) is served
by one pass instead of one pass each.

A pass that fails leaves its work in MongoDB and is tried again after a pause
that doubles with each failure in a row (0.25 s up to 10 s), nudges or not:
while RabbitMQ or MongoDB is away, every commit still nudges, and a loop that
answered each nudge with a pass would spin and log at the rate of the commits.
A store that is away is logged as one warning when the failures start, again
each minute they last, and once more when a pass succeeds; any other failure
is logged with its traceback each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from shared.outages import unavailable_store

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 10.0
OUTAGE_LOG_EVERY_SECONDS = 60.0

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
        self._failures = 0  # failed passes in a row
        self._outage_logged_at = 0.0

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
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - the work stays in MongoDB for the next pass
                task = asyncio.current_task()
                if isinstance(exc, asyncio.CancelledError) and (self._stopping or (task is not None and task.cancelling())):
                    raise  # this loop is being stopped
                # Otherwise a failure, a cancel included: a client library cancels what a pass awaits when it
                # drops its connection (aiormq's pending confirms), and ending the loop then would stop the
                # relay for the life of the process.
                self._failures += 1
                self._log_failure(exc)
                await asyncio.sleep(min(FIRST_BACKOFF_SECONDS * 2 ** min(self._failures - 1, 10), MAX_BACKOFF_SECONDS))
                continue
            if self._failures:
                log.info("%s passes succeed again after %d failed", self.name, self._failures)
                self._failures = 0
            if not more and not self._stopping:
                await self._wait()

    def _log_failure(self, exc: BaseException) -> None:
        store = unavailable_store(exc)
        if store is None:
            log.error("%s pass failed; will retry", self.name, exc_info=exc)
            return
        now = time.monotonic()
        if self._failures == 1 or now - self._outage_logged_at >= OUTAGE_LOG_EVERY_SECONDS:
            self._outage_logged_at = now
            log.warning(
                "%s: %s is unavailable; retrying with back-off", self.name, store,
                extra={"failed_passes": self._failures, "error": repr(exc)[:500]},
            )  # fmt: skip

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
