"""Publishing with publisher confirms: ``publish`` returns once the broker has the message."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractExchange

from shared.events import Envelope
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
    """Publish persistently and wait for the broker's confirm (the channel has confirms on)."""
    await exchange.publish(to_message(envelope), routing_key=envelope.type)
    EVENTS_PUBLISHED.labels(type=envelope.type).inc()
