"""Exchanges, queues and bindings: one durable queue per consuming service.

Every service declares the whole topology when it starts (declarations are
idempotent), so an event published before its consumer ever ran waits in that
consumer's queue instead of being dropped for want of a binding.

- ``<exchange>``: the topic exchange every event is published to, with its
  type as routing key.
- ``<exchange>.<service>``: a quorum queue per service bound to the types it
  consumes. Its delivery limit is a safety net: a message whose handler keeps
  crashing the process is dead-lettered by the broker itself.
- ``<exchange>.dlx`` and ``<exchange>.<service>.dlq``: where parked messages
  go, with the error that parked them, until someone replays them.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

# Which event types each service consumes. A contract between services,
# so it lives here and not in any one of them.
SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "ingest": ("image.submitted",),
    "annotation": ("annotations.imported",),
    "search": ("image.ingested", "annotation.created", "annotation.updated", "annotation.deleted", "label.changed"),
}

# Redeliveries after which the broker itself dead-letters a message (a handler
# that crashes its process never gets to park the message).
DELIVERY_LIMIT = 10


@dataclass(frozen=True)
class Topology:
    exchange: AbstractExchange
    dead_letter_exchange: AbstractExchange


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dlq"


async def declare_topology(channel: AbstractChannel, exchange_name: str) -> Topology:
    exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    dlx = await channel.declare_exchange(f"{exchange_name}.dlx", aio_pika.ExchangeType.DIRECT, durable=True)
    for service, types in SUBSCRIPTIONS.items():
        await declare_service_queue(channel, exchange, dlx, f"{exchange_name}.{service}", types)
    return Topology(exchange, dlx)


async def declare_service_queue(
    channel: AbstractChannel,
    exchange: AbstractExchange,
    dlx: AbstractExchange,
    queue_name: str,
    routing_keys: tuple[str, ...],
) -> AbstractQueue:
    dlq = await channel.declare_queue(
        dead_letter_queue_name(queue_name), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dlx, routing_key=queue_name)
    queue = await channel.declare_queue(
        queue_name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": dlx.name,
            "x-dead-letter-routing-key": queue_name,
        },
    )
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue
