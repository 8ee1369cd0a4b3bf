"""The bus as one object: a robust connection, a confirming channel, the topology."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from shared.bus.consumer import Handler, MessageConsumer, ParkedCallback
from shared.bus.publisher import publish
from shared.bus.topology import SUBSCRIPTIONS, Topology, dead_letter_queue_name, declare_service_queue, declare_topology
from shared.events import Envelope
from shared.outages import DependencyUnavailable
from shared.settings import CorpusSettings

log = logging.getLogger(__name__)


class BusUnavailable(DependencyUnavailable):
    """RabbitMQ is not connected now (the robust connection is reconnecting): retry later."""

    store = "RabbitMQ"


class Bus:
    def __init__(self, settings: CorpusSettings) -> None:
        self.settings = settings
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._topology: Topology | None = None
        self._consumer_channels: list[AbstractChannel] = []
        self._consumers: list[tuple[AbstractQueue, str, MessageConsumer]] = []

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self.settings.amqp_url, client_properties={"connection_name": self.settings.service_name}
        )
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._topology = await declare_topology(self._channel, self.settings.amqp_exchange)

    async def stop_consuming(self, grace: float = 10.0) -> None:
        """Take no more messages, let the ones in hand finish (``grace`` seconds at most), then close the
        consuming channels, so RabbitMQ returns whatever is still unacknowledged to its queue. A service
        calls this before it closes what its handlers use: a handler that finds its worker pool closed
        would otherwise fail its message (an image refused as undecodable on a graceful stop)."""
        for queue, tag, consumer in self._consumers:
            consumer.stopping = True
            with contextlib.suppress(Exception):  # a connection that is away has no consumer left to cancel
                await queue.cancel(tag)
        try:
            await asyncio.wait_for(asyncio.gather(*(consumer.idle() for _, _, consumer in self._consumers)), grace)
        except TimeoutError:
            log.warning("messages still in hand after %.0f s; RabbitMQ returns them to the queue", grace)
            for _, _, consumer in self._consumers:
                consumer.cancel_in_hand()
        for channel in self._consumer_channels:
            with contextlib.suppress(Exception):
                await channel.close()
        self._consumers.clear()
        self._consumer_channels.clear()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            raise RuntimeError("bus is not connected")
        return self._topology

    @property
    def is_open(self) -> bool:
        """Connected now: a robust connection that is reconnecting is not closed, but it is not open either."""
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    def _require_open(self) -> None:
        assert self._connection is not None, "connect() first"
        if not self.is_open:
            raise BusUnavailable("RabbitMQ is not connected; the connection is being re-established")

    async def _side_channel(self) -> AbstractChannel:
        """A channel of its own for one piece of work, or :class:`BusUnavailable` while RabbitMQ is away."""
        self._require_open()
        try:
            return await self._connection.channel()
        except RuntimeError as exc:  # aio-pika: "Connection was not opened" when it dropped just now
            raise BusUnavailable(f"RabbitMQ is not connected: {exc}") from exc

    async def publish(self, envelope: Envelope) -> None:
        await publish(self.topology.exchange, envelope)

    async def consume(
        self,
        handlers: Mapping[str, Handler],
        service: str | None = None,
        on_invalid: Callable[[bytes, str], Awaitable[None]] | None = None,
        on_parked: ParkedCallback | None = None,
    ) -> None:
        """Start consuming this service's queue on its own channel, with prefetch as back-pressure."""
        assert self._connection is not None, "connect() first"
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.settings.amqp_prefetch)
        topology = await declare_topology(channel, self.settings.amqp_exchange)
        queue_name = self.settings.queue_name(service)
        queue = await declare_service_queue(
            channel, topology.exchange, topology.dead_letter_exchange, queue_name, tuple(handlers)
        )
        consumer = MessageConsumer(
            queue_name=queue_name,
            handlers=handlers,
            dead_letter_exchange=topology.dead_letter_exchange,
            attempts=self.settings.consume_attempts,
            backoff_seconds=self.settings.consume_backoff_seconds,
            outage_patience=self.settings.consume_outage_patience_seconds,
            on_invalid=on_invalid,
            on_parked=on_parked,
        )
        tag = await queue.consume(consumer)
        self._consumers.append((queue, tag, consumer))
        self._consumer_channels.append(channel)
        log.info("consuming", extra={"queue": queue_name, "types": sorted(handlers)})

    async def queue_depths(self) -> list[tuple[str, int, int]]:
        """(queue, messages waiting, messages parked) for every subscribing service's queue.

        Passive declares on a channel of its own: nothing is created, and a refusal closes only that channel.
        """
        channel = await self._side_channel()
        try:
            rows = []
            for service in SUBSCRIPTIONS:
                name = self.settings.queue_name(service)
                main = await channel.declare_queue(name, passive=True)
                parked = await channel.declare_queue(dead_letter_queue_name(name), passive=True)
                rows.append((name, main.declaration_result.message_count, parked.declaration_result.message_count))
            return rows
        finally:
            await channel.close()

    async def replay_parked(self, service: str | None = None, limit: int = 1000) -> int:
        """Move the messages parked when this is called (at most ``limit``) back onto the service's queue.

        Each goes to the queue it was parked from (through the default exchange), not to the topic exchange,
        which would hand it to every other subscriber of its type as well. Only as many as were parked at the
        start are moved: one that fails again is parked behind them, and is not taken a second time.
        """
        assert self._channel is not None, "connect() first"
        self._require_open()
        queue_name = self.settings.queue_name(service)
        dlq = await self._channel.declare_queue(dead_letter_queue_name(queue_name), passive=True)
        parked = dlq.declaration_result.message_count or 0
        replayed = 0
        while replayed < min(limit, parked):
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}
            await self._channel.default_exchange.publish(
                aio_pika.Message(
                    body=message.body,
                    headers=headers,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message.message_id,
                    type=message.type,
                    correlation_id=message.correlation_id,
                ),
                routing_key=queue_name,
            )
            await message.ack()
            replayed += 1
        return replayed
