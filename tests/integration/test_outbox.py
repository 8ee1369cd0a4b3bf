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
        ids = [str(e.id) for e in envelopes]

        async def none_pending() -> bool:
            return await mongo_db[OUTBOX].count_documents({"_id": {"$in": ids}, "status": "pending"}) == 0

        # The consumer can hear of the last batch before the relay has marked it sent (and stopping the relay
        # then cancels the marking): wait for the marks with the relay running.
        await eventually(none_pending)
    finally:
        await relay.stop()


async def test_while_rabbitmq_is_cut_off_the_relay_publishes_nothing_and_catches_up_after(base_settings, mongo_db, make_bus):
    from urllib.parse import urlsplit

    from shared.bus import Bus
    from shared.outages import is_outage
    from tests.proxy import TcpProxy

    received = set()

    async def handler(envelope, data):
        received.add(envelope.id)

    consumer = await make_bus()
    await consumer.consume({"image.ingested": handler})
    target = urlsplit(base_settings.amqp_url)
    proxy = await TcpProxy(target.hostname, target.port).start()
    cut_off = Bus(base_settings.model_copy(update={"amqp_url": base_settings.amqp_url.replace(target.netloc.split("@")[-1], proxy.address)}))
    await cut_off.connect()
    try:
        await proxy.cut()
        await eventually(lambda: asyncio.sleep(0, not cut_off.is_open))
        env = ingested(300)
        async with mongo_db.client.start_session() as session:
            await session.with_transaction(lambda s: stage(mongo_db, env, s))
        relay = OutboxRelay(mongo_db, cut_off, poll_seconds=0.1)
        with pytest.raises(Exception) as away:
            await relay.relay_pending()
        assert is_outage(away.value)  # one outage for the pass, not a failed publish per event
        assert (await mongo_db[OUTBOX].find_one({"_id": str(env.id)}))["status"] == "pending"
        await proxy.restore()
        relay.start()
        try:
            await eventually(lambda: asyncio.sleep(0, env.id in received), timeout=60)  # reconnected, relayed
        finally:
            await relay.stop()
    finally:
        await cut_off.close()
        await proxy.cut()
