"""MongoDB through PyMongo's asyncio API (``AsyncMongoClient``; Motor is deprecated)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.settings import CorpusSettings


T = TypeVar("T")

# How long a transaction may take, with the re-runs ``with_transaction`` makes (a write conflict, an
# election, a commit whose answer was lost), before its caller gets the error. PyMongo's own limit is
# 120 s: a request caught in a transaction when MongoDB went away waited for it to come back (70 s
# and more) instead of answering 503. Under the server's 60 s transaction lifetime either way.
TRANSACTION_SECONDS = 15.0
# A label rename or merge rewrites the summaries of every image that carries the label: more time.
LONG_TRANSACTION_SECONDS = 55.0


async def in_transaction(db: AsyncDatabase, work: Callable[[AsyncClientSession], Awaitable[T]], *, seconds: float = TRANSACTION_SECONDS) -> T:
    """Run ``work`` in one transaction, re-run from the start on a transient error, within ``seconds`` in all
    (PyMongo's client-side operation timeout: past it, the error is a timeout, which is an outage)."""
    with pymongo.timeout(seconds):
        async with db.client.start_session() as session:
            return await session.with_transaction(work)


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
