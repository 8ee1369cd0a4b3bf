"""The annotation service's background process: the drain and the outbox relay, off the request loop.

Started and supervised by the service (:mod:`services.annotation.adapters.drain_process`),
never by hand. It reads its settings from ``CORPUS_DRAIN_WORKER_SETTINGS`` (JSON) and its
work from stdin, one line at a time:

- ``<id> <id> ...``: annotations the service just wrote, whose pending changes to move;
- ``relay``: events were staged directly (a bulk write): publish them.

It also finishes the renames and merges a process left half-done
(:class:`services.annotation.adapters.label_moves.LabelMoves`).

Stdin closing is the signal to stop (SIGINT and SIGTERM are ignored: the service decides): it moves what it was told about, stops the relay and
exits. Anything it never got to stays pending in MongoDB, where its sweep (or the next
worker's) finds it: the pipe carries hints, never the only copy of anything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from services.annotation.adapters.label_moves import LabelMoves
from services.annotation.adapters.pending import PendingDrain
from services.annotation.config import AnnotationSettings
from shared.bus import Bus
from shared.clients.mongo import database, mongo_client
from shared.logs import configure_logging
from shared.outbox import OutboxRelay
from shared.web.serve import loop_factory

SETTINGS_ENV = "CORPUS_DRAIN_WORKER_SETTINGS"
RELAY = "relay"

log = logging.getLogger(__name__)


async def _stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run(settings: AnnotationSettings) -> None:
    client = mongo_client(settings)
    bus = Bus(settings)
    await bus.connect()
    db = database(client, settings)
    relay = OutboxRelay.configured(db, bus, settings)
    drain = PendingDrain(db, relay, poll_seconds=settings.outbox_poll_seconds, gather_seconds=settings.pending_gather_seconds)
    moves = LabelMoves(db, relay)
    relay.start()
    drain.start()
    moves.start()
    log.info("drain worker started")
    try:
        reader = await _stdin()
        while line := await reader.readline():
            words = line.decode().split()
            if words == [RELAY]:
                relay.nudge()
            elif words:
                drain.nudge(words)
    finally:
        await moves.stop()
        await drain.stop()
        await relay.stop()
        try:  # what it was told about, moved and published now rather than by the next sweep
            await asyncio.wait_for(drain.flush(), timeout=5)
            await asyncio.wait_for(relay.relay_pending(), timeout=5)
        except Exception:  # noqa: BLE001 - still pending in MongoDB: the next worker takes it
            log.warning("pending changes or events left for the next worker", exc_info=True)
        await bus.close()
        await client.close()
        log.info("drain worker stopped")


def main() -> None:
    # It lives exactly as long as the service's end of the pipe: a Ctrl-C in a terminal reaches the whole
    # process group, and the service, not this process, decides when to stop (it closes stdin).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = AnnotationSettings.model_validate_json(os.environ[SETTINGS_ENV])
    configure_logging(f"{settings.service_name}-drain", settings.log_level)
    with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
        runner.run(run(settings))


if __name__ == "__main__":
    main()
