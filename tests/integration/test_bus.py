"""The bus against a real RabbitMQ: delivery, retries, parking with the error, replay."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

import aio_pika
import pytest
from prometheus_client import REGISTRY
from pymongo.errors import DocumentTooLarge

from shared.bus import Bus, PermanentError, dead_letter_queue_name
from shared.events import Envelope, ImageIngested
from shared.outages import DependencyUnavailable
from tests.conftest import eventually
from tests.stack import close_rabbit_connections


def ingested(n: int = 1) -> Envelope:
    data = ImageIngested(
        image_id=f"{n:064x}",
        version=1,
        sha256=f"{n:064x}",
        width=10,
        height=10,
        format="PNG",
        bytes=100,
        created_at=datetime.now(UTC),
    )
    return Envelope.wrap(data, producer="test")


async def parked_messages(bus: Bus) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Drain the service's dead-letter queue (acking what it read)."""
    connection = await aio_pika.connect(bus.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.get_queue(dead_letter_queue_name(bus.settings.queue_name()))
        out = []
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            await message.ack()
            out.append(message)
        return out


async def test_published_event_reaches_the_handler_once_with_its_payload(bus):
    received = []

    async def handler(envelope, data):
        received.append((envelope, data))

    await bus.consume({"image.ingested": handler})
    sent = ingested(1)
    await bus.publish(sent)
    await eventually(lambda: asyncio.sleep(0, len(received) == 1))
    envelope, data = received[0]
    assert envelope.id == sent.id
    assert data.image_id == sent.data["image_id"]
    await asyncio.sleep(0.3)
    assert len(received) == 1  # acked: not redelivered


async def test_invalid_json_is_parked_with_its_error_and_never_reaches_the_handler(bus):
    calls = []

    async def handler(envelope, data):
        calls.append(envelope)

    await bus.consume({"image.ingested": handler})
    await bus.topology.exchange.publish(aio_pika.Message(b"{not json", type="image.ingested"), routing_key="image.ingested")
    parked = await eventually(lambda: parked_messages(bus))
    assert parked[0].body == b"{not json"
    assert parked[0].headers["x-outcome"] == "invalid"
    assert "ValidationError" in parked[0].headers["x-error"]
    assert calls == []


async def test_wrong_schema_is_parked_as_invalid(bus):
    await bus.consume({"image.ingested": lambda e, d: asyncio.sleep(0)})
    env = ingested(2).model_copy(update={"schema_": 7})
    await bus.topology.exchange.publish(aio_pika.Message(env.to_json()), routing_key="image.ingested")
    parked = await eventually(lambda: parked_messages(bus))
    assert "schema 7" in parked[0].headers["x-error"]


async def test_transient_failures_are_retried_then_succeed(bus):
    attempts = []

    async def flaky(envelope, data):
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("index unavailable")

    await bus.consume({"image.ingested": flaky})
    await bus.publish(ingested(3))
    await eventually(lambda: asyncio.sleep(0, len(attempts) == 3))
    await asyncio.sleep(0.3)
    assert len(attempts) == 3
    assert await parked_messages(bus) == []


async def test_failure_after_all_attempts_is_parked_then_replayed(bus):
    attempts = []
    told = []
    healthy = False

    async def on_parked(envelope, data, error, attempts_made):
        told.append(attempts_made)

    async def handler(envelope, data):
        attempts.append(envelope.id)
        if not healthy:
            raise ConnectionError("still down")

    await bus.consume({"image.ingested": handler}, on_parked=on_parked)
    sent = ingested(4)
    await bus.publish(sent)
    await eventually(lambda: asyncio.sleep(0, len(attempts) == 3))
    # Parked, not dropped: the DLQ holds it with its error. Replay once the cause is fixed.
    connection = await aio_pika.connect(bus.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.get_queue(dead_letter_queue_name(bus.settings.queue_name()))
        await eventually(lambda: _count(dlq))
        peek = await dlq.get(no_ack=False)
        assert "ConnectionError: still down" in peek.headers["x-error"]
        await peek.nack(requeue=True)
    # The broker puts a nacked message back a moment after the nack: replay counts only what is parked.
    await eventually(lambda: _parked_count(bus, 1))
    assert told == [3]  # the parking callback hears how many attempts were made
    healthy = True
    assert await bus.replay_parked() == 1
    await eventually(lambda: asyncio.sleep(0, len(attempts) == 4))
    assert attempts[-1] == sent.id


async def test_a_replayed_message_that_fails_again_is_parked_once_more_not_replayed_again(bus):
    attempts = []

    async def still_broken(envelope, data):
        attempts.append(envelope.id)
        raise PermanentError("a bug the replay does not fix")  # parked after one attempt

    await bus.consume({"image.ingested": still_broken})
    await bus.publish(ingested(7))
    await bus.publish(ingested(8))
    await eventually(lambda: asyncio.sleep(0, len(attempts) == 2))
    await eventually(lambda: _parked_count(bus, 2))
    assert await bus.replay_parked(limit=1000) == 2  # each once, though each is parked again at once
    await eventually(lambda: asyncio.sleep(0, len(attempts) == 4))
    await eventually(lambda: _parked_count(bus, 2))
    await asyncio.sleep(0.3)
    assert len(attempts) == 4


async def _parked_count(bus, expected: int) -> bool:
    connection = await aio_pika.connect(bus.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.declare_queue(dead_letter_queue_name(bus.settings.queue_name()), passive=True)
        return dlq.declaration_result.message_count == expected


async def _count(queue) -> int:
    declared = await queue.channel.declare_queue(queue.name, passive=True)
    return declared.declaration_result.message_count


@pytest.mark.parametrize(
    "error",
    [PermanentError("image vanished from MongoDB"), DocumentTooLarge("BSON document too large (32198587 bytes)")],
    ids=["permanent", "unstorable-document"],  # too large stays too large: five attempts changed nothing
)
async def test_a_failure_no_retry_can_fix_is_parked_without_retries(bus, error):
    attempts = []

    async def handler(envelope, data):
        attempts.append(1)
        raise error

    await bus.consume({"image.ingested": handler})
    await bus.publish(ingested(5))
    parked = await eventually(lambda: parked_messages(bus))
    assert len(attempts) == 1
    assert parked[0].headers["x-outcome"] == "failed" and type(error).__name__ in parked[0].headers["x-error"]
    assert json.loads(parked[0].body)["type"] == "image.ingested"


async def test_parking_callbacks_hear_of_a_failed_event_and_their_own_failure_does_not_stop_the_parking(bus):
    told = []

    async def handler(envelope, data):
        raise PermanentError("the source is gone")

    async def on_parked(envelope, data, error, attempts):
        told.append((envelope.id, data.image_id, error, attempts))
        raise RuntimeError("the rejections store is down too")

    await bus.consume({"image.ingested": handler}, on_parked=on_parked)
    sent = ingested(6)
    await bus.publish(sent)
    parked = await eventually(lambda: parked_messages(bus))
    # One attempt: a callback that said "failed 3 times" of it misled whoever read its rejection.
    assert told == [(sent.id, sent.data["image_id"], "PermanentError: the source is gone", 1)]
    assert parked[0].headers["x-error"] == "PermanentError: the source is gone"


async def test_an_outage_counts_no_attempts_and_one_that_outlasts_the_patience_requeues_instead_of_parking(make_bus):
    bus = await make_bus(consume_attempts=2, consume_backoff_seconds=0.02, consume_outage_patience_seconds=0.3)
    calls = []
    healthy = False

    async def handler(envelope, data):
        calls.append(envelope.id)
        if not healthy:
            raise DependencyUnavailable("the index does not answer")

    def requeued() -> float:
        return REGISTRY.get_sample_value("corpus_events_consumed_total", {"type": "image.ingested", "outcome": "requeued_outage"}) or 0.0

    before = requeued()
    await bus.consume({"image.ingested": handler})
    await bus.publish(ingested(5))
    await eventually(lambda: asyncio.sleep(0, requeued() > before))  # the patience ran out: back on the queue
    assert len(calls) > bus.settings.consume_attempts  # an outage counts no attempts
    assert await parked_messages(bus) == []
    healthy = True
    done = len(calls)
    await eventually(lambda: asyncio.sleep(0, len(calls) > done))
    await asyncio.sleep(0.5)
    assert len(set(calls)) == 1 and await parked_messages(bus) == []
    settled = len(calls)
    await asyncio.sleep(0.5)
    assert len(calls) == settled  # acked: no more deliveries


def test_the_cli_status_lists_every_service_queue_with_its_counts(names, base_settings):
    from typer.testing import CliRunner

    from services.cli import app
    from shared.bus import SUBSCRIPTIONS

    env = {f"CORPUS_{k.upper()}": str(v) for k, v in names.items()}
    result = CliRunner().invoke(app, ["bus", "status"], env=env)
    assert result.exit_code == 0, result.output
    assert "waiting" in result.output and "ready" not in result.output  # the API's and the admin page's word
    for service in SUBSCRIPTIONS:
        assert base_settings.queue_name(service) in result.output


async def test_a_handler_runs_to_its_end_when_rabbitmq_closes_its_connection_and_the_repeat_is_delivered(base_settings):
    """aiormq cancelled a handler when RabbitMQ closed the connection under it (a broker restart): a submission
    whose image was stored was let go half-way and recorded, on redelivery, as a duplicate of itself. The
    handler now finishes; the ack it can no longer send brings the message again, which an idempotent handler
    takes as a repeat."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    url = base_settings.amqp_url + ("&" if "?" in base_settings.amqp_url else "?") + "reconnect_interval=0.1"
    bus = Bus(base_settings.model_copy(update={"service_name": name, "amqp_url": url}))
    await bus.connect()
    started, finished, cancelled = [], [], []
    release = asyncio.Event()

    async def handler(envelope, data):
        started.append(envelope.id)
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(envelope.id)
            raise
        finished.append(envelope.id)

    try:
        await bus.consume({"image.ingested": handler})
        sent = ingested(11)
        await bus.publish(sent)
        await eventually(lambda: asyncio.sleep(0, len(started) == 1))
        await eventually(lambda: close_rabbit_connections(name))  # as a restart does, while the handler works
        await eventually(lambda: asyncio.sleep(0, len(started) == 2), timeout=30)  # reconnected: delivered again
        release.set()
        await eventually(lambda: asyncio.sleep(0, finished == [sent.id, sent.id]))
        assert cancelled == []  # the first delivery's handler ran to its end too
        await bus.stop_consuming()
        await bus.close()
        connection = await aio_pika.connect(base_settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            # The repeat was acked: the queue's next message is one put behind it now, not the repeat again.
            await channel.default_exchange.publish(aio_pika.Message(b"marker"), routing_key=bus.settings.queue_name())
            queue = await channel.get_queue(bus.settings.queue_name())
            first = await eventually(lambda: queue.get(no_ack=True, fail=False))
            assert first.body == b"marker"
    finally:
        await bus.close()
        connection = await aio_pika.connect(base_settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(bus.settings.queue_name())
            await channel.queue_delete(dead_letter_queue_name(bus.settings.queue_name()))
