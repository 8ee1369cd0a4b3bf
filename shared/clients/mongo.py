"""MongoDB through PyMongo's asyncio API (``AsyncMongoClient``; Motor is deprecated)."""

from __future__ import annotations

from pymongo import AsyncMongoClient
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
