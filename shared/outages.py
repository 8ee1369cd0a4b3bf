"""Telling "a store we depend on is not answering" apart from "this message or request fails".

A consumer retries a failing message a few times and then parks it: right for
a message that cannot be handled, wrong while MongoDB elects a primary,
Elasticsearch restarts or MinIO is unreachable. Then every message in
flight would be parked in a few seconds, and each one would have to be
replayed by hand. ``is_outage`` recognises the errors our own stores' clients
raise when the store is unreachable, overloaded or between leaders. Adapters
that see such a state without a client error raise ``DependencyUnavailable``.
An upstream source that fails (a producer's URL) is not an outage: the
submission handler reports it on its own terms.
"""

from __future__ import annotations

import aiormq.exceptions
import elasticsearch
import elastic_transport
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from shared.unavailable import DependencyUnavailable

__all__ = ["DependencyUnavailable", "is_outage", "unavailable_store"]

# Answers of a store that is there but cannot take the request now.
BUSY_STATUSES = frozenset({429, 502, 503, 504})
# MongoDB's codes for a server shutting down or between primaries. A write it answers so while it shuts down
# comes as a WriteConcernError (code 91, label RetryableWriteError), which is no ConnectionFailure: it was a 500
# while the write had in fact been applied, where the client should hear "unavailable, retry".
MONGO_STEPPING_DOWN = frozenset({91, 189, 10107, 11600, 11602, 13435, 13436})


# What each store's client raises when the store is unreachable.
UNAVAILABLE: tuple[tuple[str, tuple[type[BaseException], ...]], ...] = (
    ("MongoDB", (ConnectionFailure,)),  # no server selectable, a network error, not primary (an election)
    ("Elasticsearch", (elastic_transport.ConnectionError, elastic_transport.ConnectionTimeout)),
    ("RabbitMQ", (aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ChannelInvalidStateError)),
)


def unavailable_store(exc: BaseException | None) -> str | None:
    """The store that ``exc`` (or an error it was raised from) says is unavailable, or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DependencyUnavailable):
            return exc.store
        for store, types in UNAVAILABLE:
            if isinstance(exc, types):
                return store
        if isinstance(exc, PyMongoError) and _mongo_unavailable(exc):
            return "MongoDB"
        if isinstance(exc, elasticsearch.ApiError) and exc.meta.status in BUSY_STATUSES:
            return "Elasticsearch"
        exc = exc.__cause__  # only an explicit ``raise ... from``: a later error is not caused by an earlier one
    return None


def _mongo_unavailable(exc: PyMongoError) -> bool:
    if exc.has_error_label("TransientTransactionError") or exc.has_error_label("RetryableWriteError"):
        return True
    return isinstance(exc, OperationFailure) and exc.code in MONGO_STEPPING_DOWN


def is_outage(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an error it was raised from) says one of our stores is unavailable."""
    return unavailable_store(exc) is not None
