"""The transactional outbox and its relay.

A service writes its business change and the event announcing it in one
MongoDB transaction (:func:`stage`); the relay then publishes pending events
with publisher confirms and marks them sent. A crash anywhere converges: an
event staged but not yet confirmed is published again on the next pass, and
consumers are idempotent, so at-least-once delivery is safe. Several replicas
may relay at once for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from pymongo import ASCENDING, UpdateMany, WriteConcern
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.background import LoopDriven, PollingLoop
from shared.bus import Bus, BusUnavailable
from shared.clients.mongo import insert_all
from shared.events import Envelope
from shared.metrics import OUTBOX_RELAYED
from shared.settings import CorpusSettings

log = logging.getLogger(__name__)

OUTBOX = "outbox"
# Sent entries are kept a week for inspection, then MongoDB's TTL monitor removes them.
SENT_RETENTION_SECONDS = 7 * 24 * 3600


async def ensure_outbox_indexes(db: AsyncDatabase) -> None:
    outbox = db[OUTBOX]
    await outbox.create_index([("status", ASCENDING), ("created_at", ASCENDING)])
    await outbox.create_index("sent_at", expireAfterSeconds=SENT_RETENTION_SECONDS)


def outbox_entry(envelope: Envelope) -> dict:
    """The outbox document of an event (written by :func:`stage`, or kept by a writer to stage later)."""
    return {
        "_id": str(envelope.id),
        "type": envelope.type,
        "envelope": envelope.model_dump(mode="json", by_alias=True),
        "status": "pending",
        "created_at": envelope.occurred_at,
    }


async def stage(db: AsyncDatabase, envelope: Envelope, session: AsyncClientSession) -> None:
    """Write the event inside the caller's transaction."""
    await db[OUTBOX].insert_one(outbox_entry(envelope), session=session)


async def stage_many(db: AsyncDatabase, envelopes: list[Envelope], session: AsyncClientSession) -> None:
    """Write many events inside the caller's transaction in one round trip (bulk writes)."""
    await stage_entries(db, [outbox_entry(envelope) for envelope in envelopes], session)


async def stage_entries(db: AsyncDatabase, entries: list[dict], session: AsyncClientSession) -> None:
    """Write outbox documents made earlier by :func:`outbox_entry`, in one round trip."""
    await insert_all(db[OUTBOX], entries, session)


class OutboxRelay(LoopDriven):
    def __init__(
        self, db: AsyncDatabase, bus: Bus, *, poll_seconds: float, gather_seconds: float = 0.0, batch_size: int = 256
    ) -> None:
        self.db = db
        self.bus = bus
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        # Marking an event sent needs no journal flush: a mark lost in a crash only means the event is
        # published again, which idempotent consumers absorb. The writer's commits do not queue behind it.
        self._marks = db[OUTBOX].with_options(write_concern=WriteConcern(w=1, j=False))
        self._loop = PollingLoop("outbox-relay", self._relay_batch, poll_seconds=poll_seconds, gather_seconds=gather_seconds)

    @classmethod
    def configured(cls, db: AsyncDatabase, bus: Bus, settings: CorpusSettings) -> OutboxRelay:
        return cls(db, bus, poll_seconds=settings.outbox_poll_seconds, gather_seconds=settings.outbox_gather_seconds)

    def nudge(self) -> None:
        """Tell the relay there is something new (called after a commit)."""
        self._loop.nudge()

    async def _relay_batch(self) -> bool:
        # A full batch means more is waiting: no pause.
        return await self.relay_pending() >= self.batch_size

    async def relay_pending(self) -> int:
        """Publish one batch of pending events; return how many were confirmed."""
        cursor = self.db[OUTBOX].find({"status": "pending"}).sort("created_at", ASCENDING).limit(self.batch_size)
        entries = await cursor.to_list()
        if not entries:
            return 0
        if not self.bus.is_open:  # reconnecting: every publish would fail; the events wait in MongoDB
            raise BusUnavailable(f"RabbitMQ is not connected; {len(entries)} or more events wait in the outbox")
        envelopes = [Envelope.model_validate(entry["envelope"]) for entry in entries]
        # Confirms are pipelined: publish the whole batch, then wait for all of them.
        results = await asyncio.gather(*(self.bus.publish(env) for env in envelopes), return_exceptions=True)
        confirmed = [str(env.id) for env, result in zip(envelopes, results, strict=True) if result is None]
        failed = [(env, result) for env, result in zip(envelopes, results, strict=True) if result is not None]
        if failed and not confirmed:  # the whole pass failed: the loop backs off and says why, once
            error = failed[0][1]
            if not isinstance(error, Exception):  # CancelledError: aiormq cancels confirms when it drops the connection
                raise BusUnavailable(f"RabbitMQ dropped the connection before confirming ({error!r})") from error
            raise error
        if failed:
            log.warning(
                "%d of %d events not confirmed; they stay pending for the next pass", len(failed), len(envelopes),
                extra={"event_id": str(failed[0][0].id), "error": repr(failed[0][1])[:500]},
            )  # fmt: skip
        if confirmed:
            now = datetime.now(UTC)
            await self._marks.bulk_write([UpdateMany({"_id": {"$in": confirmed}}, {"$set": {"status": "sent", "sent_at": now}})])
            for env, result in zip(envelopes, results, strict=True):
                if result is None:
                    OUTBOX_RELAYED.labels(type=env.type).inc()
        return len(confirmed)
