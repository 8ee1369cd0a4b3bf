"""The drain: moves pending changes out of annotation documents into history, summaries and the outbox.

An annotation write leaves its change in the document (``pending``; see
:mod:`services.annotation.adapters.annotations`). One drain pass takes a
batch of annotations with pending changes and, in ONE transaction:

1. re-reads their pending changes inside the transaction's snapshot, and moves
   any of them found on a merged label to its survivor
   (:mod:`services.annotation.adapters.merged_labels`);
2. inserts the history documents (``_id`` = annotation id : version);
3. recomputes the summaries of their images from the current annotations;
4. stages the events in the outbox;
5. pulls exactly those changes out of the annotations.

A write that lands on one of the annotations meanwhile is a write conflict:
the transaction re-runs from the start and takes that change too. Each
process drains the annotations it wrote, by id, as soon as a short gather
window has passed; every few seconds it also sweeps up changes anyone left
waiting longer than that (a replica that crashed, a failed pass), so
nothing stays pending. After a pass the relay is nudged to publish what it
staged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.annotation.adapters.merged_labels import move_off_merged
from services.annotation.adapters.store import ANNOTATIONS, HISTORY, PENDING, PENDING_COUNT
from services.annotation.adapters.summaries import refresh_summaries
from shared.background import LoopDriven, PollingLoop
from shared.clients.mongo import in_transaction, insert_all
from shared.events import utcnow
from shared.outbox import OutboxRelay, stage_entries


class PendingDrain(LoopDriven):
    """Drains the annotations this process wrote (it knows their ids: no index scan on the hot path),
    and every ``sweep_seconds`` the changes left older than that by anyone (a replica that crashed)."""

    def __init__(
        self, db: AsyncDatabase, relay: OutboxRelay, *, poll_seconds: float, gather_seconds: float = 0.0,
        batch_size: int = 256, sweep_seconds: float = 5.0,
    ) -> None:  # fmt: skip
        self.db = db
        self.relay = relay
        self.batch_size = batch_size
        self.sweep_seconds = sweep_seconds
        self._written: set[str] = set()
        self._last_sweep = 0.0
        self._loop = PollingLoop("pending-drain", self._pass, poll_seconds=poll_seconds, gather_seconds=gather_seconds)

    @classmethod
    def on_demand(cls, db: AsyncDatabase) -> PendingDrain:
        """A drain that moves changes only when called (tests, benchmarks), never started: its relay
        publishes nothing, the events it stages are left to a running service's relay."""
        return cls(db, OutboxRelay(db, None, poll_seconds=60), poll_seconds=60)

    def nudge(self, annotation_ids: Iterable[str]) -> None:
        """Writes left pending changes in these annotations (called once they are acknowledged)."""
        self._written.update(annotation_ids)
        self._loop.nudge()

    def nudge_relay(self) -> None:
        """Events were staged directly (a bulk write): the relay should publish them."""
        self.relay.nudge()

    def _take(self) -> list[str]:
        return [self._written.pop() for _ in range(min(self.batch_size, len(self._written)))]

    async def _pass(self) -> bool:
        if self._written:
            await self.drain(self._take())
            return bool(self._written)
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_seconds:
            self._last_sweep = now
            return await self.sweep(older_than_seconds=self.sweep_seconds) >= self.batch_size
        return False

    async def sweep(self, *, older_than_seconds: float = 0.0) -> int:
        """Drain one batch of changes that have waited longer than ``older_than_seconds``, whoever wrote them."""
        query: dict[str, Any] = {PENDING_COUNT: {"$gt": 0}}
        if older_than_seconds:
            query[f"{PENDING}.0.history.changed_at"] = {"$lt": utcnow() - timedelta(seconds=older_than_seconds)}
        ids = [doc["_id"] async for doc in self.db[ANNOTATIONS].find(query, {"_id": 1}).limit(self.batch_size)]
        return await self.drain(ids) if ids else 0

    async def drain(self, annotation_ids: list[str]) -> int:
        """Move the pending changes of these annotations in one transaction; return how many annotations had some."""

        async def work(session: AsyncClientSession) -> int:
            # By _id only: the planner must never walk the pending index inside the transaction.
            cursor = self.db[ANNOTATIONS].find(
                {"_id": {"$in": annotation_ids}}, {"image_id": 1, "label_id": 1, PENDING: 1, PENDING_COUNT: 1}, session=session
            ).hint([("_id", 1)])
            docs = [doc async for doc in cursor if doc.get(PENDING_COUNT)]
            changes: list[dict[str, Any]] = [change for doc in docs for change in doc[PENDING]]
            if not changes:
                return 0
            # An edit or create prepared before a merge committed may have put its annotation on the merged label.
            await move_off_merged(self.db, docs, session)
            await insert_all(self.db[HISTORY], [change["history"] for change in changes], session)
            await refresh_summaries(self.db, {doc["image_id"] for doc in docs}, session)
            await stage_entries(self.db, [change["event"] for change in changes], session)
            await self.db[ANNOTATIONS].bulk_write(
                [
                    UpdateOne(
                        {"_id": doc["_id"]},
                        {
                            "$pull": {PENDING: {"history._id": {"$in": [c["history"]["_id"] for c in doc[PENDING]]}}},
                            "$inc": {PENDING_COUNT: -len(doc[PENDING])},
                        },
                    )
                    for doc in docs
                ],
                ordered=False,
                session=session,
            )
            return len(docs)

        drained = await in_transaction(self.db, work)
        if drained:
            self.relay.nudge()
        return drained

    async def flush(self) -> int:
        """Drain every annotation this process wrote (at shutdown: leave nothing for the sweep)."""
        total = 0
        while self._written:
            total += await self.drain(self._take())
        return total

    async def drain_all(self) -> int:
        """Drain until nothing is pending anywhere (tests, benchmarks); return the annotations emptied."""
        total = await self.flush()
        while moved := await self.sweep():
            total += moved
        return total
