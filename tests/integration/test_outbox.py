"""The outbox against real MongoDB and RabbitMQ: staged with the change, relayed once committed."""

import asyncio

import pytest

from shared.outbox import OUTBOX, OutboxRelay, ensure_outbox_indexes, stage
from tests.conftest import eventually
from tests.integration.test_bus import ingested


async def test_committed_event_is_published_and_marked_sent(bus, mongo_db):
    received = []

    async def handler(envelope, data):
        received.append(envelope.id)

    await bus.consume({"image.ingested": handler})
    await ensure_outbox_indexes(mongo_db)
    env = ingested(10)
    async with mongo_db.client.start_session() as session:
        await session.with_transaction(lambda s: stage(mongo_db, env, s))
    relay = OutboxRelay(mongo_db, bus, poll_seconds=0.1)
    relay.start()
    try:
        await eventually(lambda: asyncio.sleep(0, env.id in received))
        entry = await eventually(lambda: mongo_db[OUTBOX].find_one({"_id": str(env.id), "status": "sent"}))
        assert entry["sent_at"] is not None
    finally:
        await relay.stop()


async def test_aborted_transaction_stages_nothing(mongo_db):
    env = ingested(11)

    async def fail_after_staging(session):
        await stage(mongo_db, env, session)
        raise RuntimeError("business write failed")

    async with mongo_db.client.start_session() as session:
        with pytest.raises(RuntimeError):
            await session.with_transaction(fail_after_staging)
    assert await mongo_db[OUTBOX].find_one({"_id": str(env.id)}) is None


async def test_relay_catches_up_with_events_staged_while_it_was_down(bus, mongo_db):
    received = set()

    async def handler(envelope, data):
        received.add(envelope.id)

    await bus.consume({"image.ingested": handler})
    envelopes = [ingested(100 + n) for n in range(30)]
    for env in envelopes:
        async with mongo_db.client.start_session() as session:
            await session.with_transaction(lambda s, env=env: stage(mongo_db, env, s))
    relay = OutboxRelay(mongo_db, bus, poll_seconds=0.1, batch_size=8)  # several passes
    relay.start()
    try:
        await eventually(lambda: asyncio.sleep(0, {e.id for e in envelopes} <= received))
    finally:
        await relay.stop()
    ids = [str(e.id) for e in envelopes]
    assert await mongo_db[OUTBOX].count_documents({"_id": {"$in": ids}, "status": "pending"}) == 0
