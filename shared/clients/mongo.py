"""MongoDB through PyMongo's asyncio API (``AsyncMongoClient``; Motor is deprecated)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.settings import CorpusSettings


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
