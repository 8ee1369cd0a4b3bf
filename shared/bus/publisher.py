"""Publishing with publisher confirms: ``publish`` returns once the broker has the message."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractExchange

from shared.events import CATALOG, Envelope, UnknownEventError
from shared.metrics import EVENTS_PUBLISHED


def to_message(envelope: Envelope) -> aio_pika.Message:
    return aio_pika.Message(
        body=envelope.to_json(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(envelope.id),
        type=envelope.type,
        correlation_id=envelope.correlation_id,
        timestamp=envelope.occurred_at,
        app_id=envelope.producer,
        headers={"schema": envelope.schema_},
    )


async def publish(exchange: AbstractExchange, envelope: Envelope) -> None:
    """Publish persistently and wait for the broker's confirm (the channel has confirms on).

    A type (and schema) the catalog does not know is refused here, at the producer: the broker would take
    it, route it to no queue, confirm it and drop it (a typo such as ``image.submited``)."""
    if (envelope.type, envelope.schema_) not in CATALOG:
        raise UnknownEventError(f"no event {envelope.type!r} schema {envelope.schema_} in the catalog: nothing would receive it")
    await exchange.publish(to_message(envelope), routing_key=envelope.type)
    EVENTS_PUBLISHED.labels(type=envelope.type).inc()
