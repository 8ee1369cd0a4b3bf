"""Consuming: manual acks, retries with back-off, poison messages parked.

A message is acknowledged only after its handler returned, i.e. after its
effects are durable. A payload that does not validate is parked at once (a
retry cannot fix it); a handler that raises :class:`PermanentError` is parked
at once too; any other failure is retried with exponential back-off and parked
when the attempts run out. Parking publishes the message to the dead-letter
exchange, with the error in its headers, and waits for the broker's confirm
before acking the original: a message is never acked away.

A failure that says one of our stores is unavailable (``shared.outages``) is
not the message's fault and counts no attempt: the message is retried, the
back-off growing to 30 s, for as long as the outage patience allows, then
returned to the queue. A MongoDB election or an Elasticsearch restart delays
messages; it parks none. So does a service that stops: :meth:`Bus.stop_consuming`
takes no more messages, lets those in hand finish, and one that meets an
outage then (its worker pool closing) goes back to the queue at once.

A handler runs to its end though the channel that delivered its message
closes meanwhile (a RabbitMQ restart, a network cut): the ack it can no longer
send makes the broker deliver the message again, and the idempotent handler
takes that as a repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from bson.errors import InvalidDocument
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_not_exception_type, wait_exponential

from shared.events import Envelope, EventData, UnknownEventError, parse_data
from shared.logs import correlation_id
from shared.metrics import EVENTS_CONSUMED
from shared.outages import is_outage

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, EventData], Awaitable[None]]

# What acking (or nacking) a message raises once the channel that delivered it is gone.
CHANNEL_GONE = (ChannelInvalidStateError, AMQPError, ConnectionError)


# Told of a valid message whose handler failed for good, before it is parked: the envelope, its data, the
# error, and how many attempts were made (1 for a failure retrying cannot change).
ParkedCallback = Callable[[Envelope, EventData, str, int], Awaitable[None]]


class PermanentError(Exception):
    """A failure that retrying cannot fix: park the message now."""


class MessageConsumer:
    def __init__(
        self,
        *,
        queue_name: str,
        handlers: Mapping[str, Handler],
        dead_letter_exchange: AbstractExchange,
        attempts: int,
        backoff_seconds: float,
        outage_patience: float = 600.0,
        on_invalid: Callable[[bytes, str], Awaitable[None]] | None = None,
        on_parked: ParkedCallback | None = None,
    ) -> None:
        self.queue_name = queue_name
        # Optional: told about a message that does not validate, before it is parked (e.g. to record a rejection).
        self.on_invalid = on_invalid
        # Optional: told about a valid message whose handler failed for good, before it is parked.
        self.on_parked = on_parked
        self.handlers = handlers
        self.dlx = dead_letter_exchange
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.outage_patience = outage_patience
        # Set when the service stops: a message that meets an outage goes back to the queue at once.
        self.stopping = False
        self._in_hand: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def idle(self) -> None:
        """Until no message is in hand."""
        await self._idle.wait()

    def cancel_in_hand(self) -> None:
        """Stop the handlers still running (a service stopping after its grace)."""
        for task in list(self._in_hand):
            task.cancel()

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        # aiormq runs this in a task of the channel and cancels it when the channel closes. The handler runs
        # in a task of its own instead, shielded: cancelled half-way, a submission whose image was already
        # stored was let go, and on redelivery recorded as a duplicate of itself.
        task = asyncio.create_task(self._take(message))
        self._in_hand.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)
        await asyncio.shield(task)

    def _done(self, task: asyncio.Task) -> None:
        self._in_hand.discard(task)
        if not self._in_hand:
            self._idle.set()
        if not task.cancelled() and (error := task.exception()) is not None:  # its waiter may be gone (cancelled)
            log.error("consuming a message failed", exc_info=error)

    async def _take(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = Envelope.from_json(message.body)
            data = parse_data(envelope)
            handler = self.handlers[envelope.type]
        except (ValidationError, UnknownEventError, KeyError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if self.on_invalid is not None:
                await _tell(self.on_invalid, message.body, error)
            await self._park(message, "invalid", error)
            return
        token = correlation_id.set(envelope.correlation_id)
        extra = {"event_id": str(envelope.id), "event_type": envelope.type}
        tries = _Tries()
        try:
            await self._run_with_retries(handler, envelope, data, tries)
        except Exception as exc:  # noqa: BLE001 - every failure is parked or requeued, none crashes the consumer
            if is_outage(exc):
                log.warning("a store is still unavailable; message returned to the queue", extra={**extra, "error": repr(exc)[:500]})
                if await _answer(message.nack(requeue=True)):
                    EVENTS_CONSUMED.labels(type=envelope.type, outcome="requeued_outage").inc()
                return
            log.exception("handler failed, parking", extra=extra)
            error = f"{type(exc).__name__}: {exc}"
            if self.on_parked is not None:
                await _tell(self.on_parked, envelope, data, error, tries.failed)
            await self._park(message, "failed", error)
        else:
            if await _answer(message.ack()):
                EVENTS_CONSUMED.labels(type=envelope.type, outcome="ok").inc()
                log.debug("handled", extra=extra)
        finally:
            correlation_id.reset(token)

    async def _run_with_retries(self, handler: Handler, envelope: Envelope, data: EventData, tries: _Tries) -> None:
        def give_up(state: RetryCallState) -> bool:
            if is_outage(_error_of(state)):
                return self.stopping or state.seconds_since_start >= self.outage_patience
            return tries.failed >= self.attempts

        def waiting(state: RetryCallState) -> None:
            if is_outage(error := _error_of(state)):
                wait = state.next_action.sleep if state.next_action else 0
                log.warning("a store is unavailable; retrying in %.1f s", wait, extra={"event_type": envelope.type, "error": repr(error)[:500]})

        retrying = AsyncRetrying(
            stop=give_up,
            wait=wait_exponential(multiplier=self.backoff_seconds, max=30),
            # A document MongoDB cannot store (too large, not encodable) stays so however often it is tried.
            retry=retry_if_not_exception_type((PermanentError, InvalidDocument)),
            before_sleep=waiting,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    await handler(envelope, data)
                except Exception as exc:
                    if not is_outage(exc):
                        tries.failed += 1  # an outage counts no attempt
                    raise

    async def _park(self, message: AbstractIncomingMessage, outcome: str, error: str) -> None:
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-error": error[:4000],
                "x-outcome": outcome,
                "x-original-routing-key": message.routing_key or "",
                "x-parked-at": datetime.now(UTC).isoformat(),
                "x-parked-by": self.queue_name,
            }
        )
        parked = aio_pika.Message(
            body=message.body,
            headers=headers,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            correlation_id=message.correlation_id,
        )
        try:
            await self.dlx.publish(parked, routing_key=self.queue_name)
        except Exception:
            log.exception("could not park message; returning it to the queue")
            await _answer(message.nack(requeue=True))
            return
        if not await _answer(message.ack()):
            return  # parked, and delivered again: the handler takes the repeat
        EVENTS_CONSUMED.labels(type=message.type or "unknown", outcome=f"parked_{outcome}").inc()
        log.warning("message parked", extra={"error": error, "routing_key": message.routing_key})


@dataclass
class _Tries:
    failed: int = 0


async def _answer(sending: Awaitable[None]) -> bool:
    """Ack or nack; False when the channel that delivered the message is gone, so RabbitMQ delivers it again."""
    try:
        await sending
    except CHANNEL_GONE as exc:
        log.info("the channel closed before the message was answered; RabbitMQ delivers it again", extra={"error": repr(exc)[:200]})
        return False
    return True


def _error_of(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


async def _tell(callback: Callable[..., Awaitable[None]], *args: object) -> None:
    """Run a parking callback; its failure is logged, and the message is parked all the same."""
    try:
        await callback(*args)
    except Exception:  # noqa: BLE001
        log.exception("parking callback failed", extra={"callback": getattr(callback, "__qualname__", repr(callback))})
