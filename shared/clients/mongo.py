"""MongoDB through PyMongo's asyncio API (``AsyncMongoClient``; Motor is deprecated)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.outages import DependencyUnavailable
from shared.settings import CorpusSettings


T = TypeVar("T")

# How long ``with_transaction`` may keep re-running a transaction's work after transient errors (a write
# conflict, an election, a server that went away) before the caller gets an outage. PyMongo's own limit
# is 120 s: a request caught in a transaction when MongoDB went away waited for it to come back (70 s
# and more) instead of answering 503.
TRANSACTION_SECONDS = 15.0
# A label rename or merge rewrites the summaries of every image that carries the label: more time.
LONG_TRANSACTION_SECONDS = 55.0


class TransactionGaveUp(DependencyUnavailable):
    """The transaction kept failing with transient errors for longer than its caller allows."""

    store = "MongoDB"


async def in_transaction(db: AsyncDatabase, work: Callable[[AsyncClientSession], Awaitable[T]], *, seconds: float = TRANSACTION_SECONDS) -> T:
    """Run ``work`` in one transaction, re-run from the start on a transient error for up to ``seconds``.

    Only the re-runs are bounded, not the work (a slow transaction on a healthy server still finishes)
    and not the commit: a commit whose answer was lost is retried by PyMongo until the answer is known,
    since giving up then could tell a client "retry" about work that did commit. PyMongo's client-side
    timeout (``pymongo.timeout``) would bound both, and cut commit retries short.
    """
    give_up_at = time.monotonic() + seconds

    async def attempt(session: AsyncClientSession) -> T:
        if time.monotonic() > give_up_at:
            raise TransactionGaveUp(f"MongoDB did not complete the transaction within {seconds:g} s (transient errors)")
        return await work(session)

    async with db.client.start_session() as session:
        return await session.with_transaction(attempt)


def mongo_client(settings: CorpusSettings) -> AsyncMongoClient:
    # tz_aware: datetimes come back as aware UTC, the same as they went in.
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        appname=settings.service_name,
        serverSelectionTimeoutMS=5000,
    )


def database(client: AsyncMongoClient, settings: CorpusSettings) -> AsyncDatabase:
    return client[settings.mongo_db]


async def ping(db: AsyncDatabase) -> None:
    await db.command("ping")


async def insert_all(collection: AsyncCollection, docs: Sequence[dict[str, Any]], session: AsyncClientSession | None = None) -> None:
    """Insert in order, in one round trip. A single document takes ``insert_one``: the same
    round trip without PyMongo's bulk machinery, a measurable share of a one-annotation edit."""
    if len(docs) == 1:
        await collection.insert_one(docs[0], session=session)
    elif docs:
        await collection.insert_many(docs, ordered=True, session=session)
