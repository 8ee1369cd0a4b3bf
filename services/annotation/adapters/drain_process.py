"""The service's side of its background process (:mod:`services.annotation.drain_worker`).

Moving pending changes and relaying events is real work: a transaction per batch, a
publish per event. Done on the request loop, every request that overlaps a pass waits
for it (create p95 +4–6 ms in a loop of sequential edits). In a process of its own it
runs on the other core, and the request loop only writes a line to a pipe.

The process is restarted if it dies. Nudges are hints: what a dead process never moved
is still pending in MongoDB, and the restarted one's sweep takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterable

from services.annotation.config import AnnotationSettings
from services.annotation.drain_worker import RELAY, SETTINGS_ENV

log = logging.getLogger(__name__)

RESTART_SECONDS = 1.0
STOP_SECONDS = 15.0


class DrainProcess:
    def __init__(self, settings: AnnotationSettings) -> None:
        # The worker gets every setting but the bootstrap key, which it has no use for.
        self._env = {**os.environ, SETTINGS_ENV: settings.model_dump_json(exclude={"admin_key"})}
        self._niceness = settings.drain_niceness
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="drain-process")

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs (for operators and tests)."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def _spawn(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.annotation.drain_worker", stdin=asyncio.subprocess.PIPE, env=self._env
        )
        # Below the service's own priority: on a saturated machine the requests get the cores first and
        # the drain's transactions fill the gaps (create p95 fell from 17-20 to 13-16 ms in the benchmark).
        with contextlib.suppress(ProcessLookupError):
            pid = self._process.pid
            os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + self._niceness))

    async def _supervise(self) -> None:
        while True:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            log.error("drain worker exited; restarting it", extra={"returncode": code})
            await asyncio.sleep(RESTART_SECONDS)
            await self._spawn()

    def _send(self, line: str) -> None:
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            return  # the restarted worker's sweep will find the changes
        try:
            process.stdin.write(line.encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            log.warning("drain worker not reachable; its sweep will pick the changes up")

    def nudge(self, annotation_ids: Iterable[str]) -> None:
        """Writes left pending changes in these annotations."""
        self._send(" ".join(annotation_ids))

    def nudge_relay(self) -> None:
        """Events were staged directly (a bulk write)."""
        self._send(RELAY)

    async def stop(self) -> None:
        """Close the pipe: the worker moves what it was told about, then exits."""
        self._stopping = True
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=STOP_SECONDS)
        except TimeoutError:
            log.error("drain worker did not stop in time; killing it")
            process.kill()
            await process.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
