"""The work a rename or merge leaves on the label's annotations, done in small batches after the label's change.

A rename or merge once did everything in one transaction: the label, every annotation it moved and every
summary it recomputed. On a label with tens of thousands of annotations under steady edits that transaction
write-conflicted with the edits and the drain until it gave up (a tester's merge of 20,000 took 55 s and
failed with 503, the drain stalled 30 s behind it). Now the label's own change commits in a short
transaction with its ``label.changed`` event and a record in ``label_moves`` of the work left; then:

- a merge moves its annotations to the survivor (merges followed) ``MOVE_BATCH`` at a time, each batch in its
  own transaction with the summaries of their images, until none is left on the merged label;
- a rename recomputes the summaries of the label's images ``MOVE_BATCH`` images at a time (the record keeps
  the last image done, in image order, so a resumed rename starts after it).

Annotations move without new versions, as before. Each batch touches the record; the last step removes it and
stages the ``label.changed`` event again in one transaction, so search re-projects every image that moved
(its first one arrived while they were still moving), once: a finisher that finds the record gone stages
nothing. An edit racing a batch is a write conflict that re-runs the (short) batch. An edit or create that
puts an annotation back on the merged label after its batch is moved by the drain or the bulk path
(:mod:`services.annotation.adapters.merged_labels`), as before.

A process that dies mid-way leaves the record behind: the drain process (:class:`LabelMoves`) finishes every
record untouched for ``MOVE_STALE_SECONDS``, at its start and every few seconds after. Two finishers of one
record at once (a slow batch taken for a dead one) are harmless: every step is idempotent.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.annotation.adapters.merged_labels import move_off_merged
from services.annotation.adapters.store import ANNOTATIONS, LABEL_MOVES
from services.annotation.adapters.summaries import refresh_summaries
from shared.background import LoopDriven, PollingLoop
from shared.clients.mongo import in_transaction
from shared.events import Envelope, LabelChanged, utcnow
from shared.outbox import OutboxRelay, stage

log = logging.getLogger(__name__)

MOVE_BATCH = 500  # annotations a merge moves, or images a rename re-summarises, per transaction
MOVE_STALE_SECONDS = 30.0  # a record untouched this long is taken to be left by a process that died
RENAME, MERGE = "rename", "merge"


async def record_move(
    db: AsyncDatabase, kind: str, label_id: str, event: LabelChanged, producer: str, session: AsyncClientSession
) -> dict[str, Any]:
    """Record, in the label change's transaction, the work it leaves and the event to announce once it is done."""
    now = utcnow()
    move = {
        "_id": uuid.uuid4().hex, "kind": kind, "label_id": label_id, "after": "", "moved": False,
        "event": event.model_dump(exclude={"changed_at"}), "producer": producer, "started_at": now, "touched_at": now,
    }  # fmt: skip
    await db[LABEL_MOVES].insert_one(move, session=session)
    return move


async def finish_move(db: AsyncDatabase, move: dict[str, Any], *, batch: int = MOVE_BATCH, batches: int | None = None) -> bool:
    """Do the work ``move`` left, a batch per transaction, then announce it; with ``batches``, stop after that
    many batches (the work is then left for a later finisher: False). True once the record is gone."""
    steps = _merge_batches(db, move, batch) if move["kind"] == MERGE else _rename_batches(db, move, batch)
    done = 0
    async for _ in steps:
        done += 1
        if batches is not None and done >= batches:
            await steps.aclose()
            return False
    await _complete(db, move)
    return True


async def _merge_batches(db: AsyncDatabase, move: dict[str, Any], batch: int) -> AsyncIterator[None]:
    """Until no annotation is left on the merged label: ``batch`` of them to the survivor as it is now (a
    later merge of the survivor is followed), with their images' summaries."""
    query = {"label_id": move["label_id"]}
    while docs := await db[ANNOTATIONS].find(query, {"label_id": 1, "image_id": 1}).limit(batch).to_list():
        await in_transaction(db, partial(_move_batch, db, move, docs))
        yield


async def _move_batch(db: AsyncDatabase, move: dict[str, Any], docs: list[dict[str, Any]], session: AsyncClientSession) -> None:
    await move_off_merged(db, docs, session)
    await refresh_summaries(db, {doc["image_id"] for doc in docs}, session)
    await _touch(db, move, session)


async def _rename_batches(db: AsyncDatabase, move: dict[str, Any], batch: int) -> AsyncIterator[None]:
    """The summaries of the label's images, ``batch`` images at a time in image order, after the last done."""
    query = {"label_id": move["label_id"], "image_id": {"$gt": move["after"]}}
    cursor = db[ANNOTATIONS].find(query, {"_id": 0, "image_id": 1}).sort("image_id", 1)
    images: list[str] = []
    try:
        async for doc in cursor:
            if images and images[-1] == doc["image_id"]:
                continue
            images.append(doc["image_id"])
            if len(images) > batch:  # one more than a batch: the batch before it is complete
                await in_transaction(db, partial(_summarise_batch, db, move, images[:-1]))
                images = images[-1:]
                yield
    finally:
        await cursor.close()
    if images:
        await in_transaction(db, partial(_summarise_batch, db, move, images))
        yield


async def _summarise_batch(db: AsyncDatabase, move: dict[str, Any], images: list[str], session: AsyncClientSession) -> None:
    await refresh_summaries(db, images, session)
    await _touch(db, move, session, after=images[-1])


async def _touch(db: AsyncDatabase, move: dict[str, Any], session: AsyncClientSession, **sets: Any) -> None:
    sets = {"touched_at": utcnow(), "moved": True, **sets}
    await db[LABEL_MOVES].update_one({"_id": move["_id"]}, {"$set": sets}, session=session)


async def _complete(db: AsyncDatabase, move: dict[str, Any]) -> None:
    """Remove the record and, if any batch moved something (this finisher or one before it), announce the
    change again; a label without annotations is announced once, as before."""

    async def work(session: AsyncClientSession) -> None:
        record = await db[LABEL_MOVES].find_one_and_delete({"_id": move["_id"]}, session=session)
        if record is not None and record.get("moved"):
            event = LabelChanged.model_validate({**move["event"], "changed_at": utcnow()})
            await stage(db, Envelope.wrap(event, producer=move["producer"]), session)

    await in_transaction(db, work)


async def finish_stale_moves(db: AsyncDatabase, *, older_than_seconds: float = MOVE_STALE_SECONDS) -> int:
    """Finish every move whose record nobody has touched for ``older_than_seconds``; return how many."""
    query = {"touched_at": {"$lt": utcnow() - timedelta(seconds=older_than_seconds)}}
    finished = 0
    for move in await db[LABEL_MOVES].find(query).sort("started_at", 1).to_list():
        log.info("finishing a label %s left unfinished", move["kind"], extra={"label_id": move["label_id"], "move_id": move["_id"]})
        finished += await finish_move(db, move)
    return finished


class LabelMoves(LoopDriven):
    """In the drain process: finishes the renames and merges a process left half-done, at start and every
    ``poll_seconds``, and nudges the relay to publish their closing events."""

    def __init__(self, db: AsyncDatabase, relay: OutboxRelay, *, poll_seconds: float = 5.0) -> None:
        self.db = db
        self.relay = relay
        self._loop = PollingLoop("label-moves", self._pass, poll_seconds=poll_seconds)

    async def _pass(self) -> bool:
        if await finish_stale_moves(self.db):
            self.relay.nudge()
        return False
