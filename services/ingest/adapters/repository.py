"""Images, their sources and rejections in MongoDB, each written with its event in one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.ingest.domain.model import ImageDocument, Origin
from shared.clients.mongo import in_transaction
from shared.events import Envelope
from shared.outbox import OUTBOX, ensure_outbox_indexes, stage, stage_many
from shared.readmodels import IMAGES

REJECTIONS = "rejections"
SOURCES = "sources"

Write = Callable[[AsyncClientSession], Awaitable[None]]


def source_id(image_id: str, origin: Origin) -> str:
    """One record per (image, where it came from): the same arrival twice is one record."""
    where = f"{origin.kind}|{origin.uri or ''}|{origin.dataset or ''}"
    return hashlib.sha256(f"{image_id}|{where}".encode()).hexdigest()[:32]


class ImageRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.images = db[IMAGES]
        self.rejections = db[REJECTIONS]
        self.sources = db[SOURCES]

    async def ensure_indexes(self) -> None:
        await self.images.create_index([("created_at", DESCENDING)])
        await self.images.create_index("phash_bands")
        await self.images.create_index("phash_bands_radius")  # finding images banded for another radius
        await self.rejections.create_index([("rejected_at", DESCENDING), ("_id", DESCENDING)])
        await self.rejections.create_index([("reason", ASCENDING), ("rejected_at", DESCENDING)])
        await self.sources.create_index("image_id")
        await ensure_outbox_indexes(self.db)

    async def get(self, image_id: str) -> ImageDocument | None:
        raw = await self.images.find_one({"_id": image_id})
        return ImageDocument.model_validate(raw) if raw else None

    async def get_many(self, image_ids: list[str]) -> dict[str, ImageDocument]:
        """The stored ones among these images, by id (one query)."""
        if not image_ids:
            return {}
        found = await self.images.find({"_id": {"$in": image_ids}}).to_list()
        return {raw["_id"]: ImageDocument.model_validate(raw) for raw in found}

    async def near_candidates(self, bands: list[str], limit: int) -> list[dict[str, Any]]:
        """Images sharing at least one of these pHash bands (the caller computes exact distances)."""
        if not bands:
            return []
        cursor = self.images.find({"phash_bands": {"$in": bands}}, {"phash": 1, "dhash": 1, "phash_bands": 1})
        return await cursor.limit(limit).to_list()

    async def add(self, doc: ImageDocument, envelope: Envelope, source: dict[str, Any]) -> bool:
        """Insert the document, its source record and its event atomically. False if the image already exists."""

        async def write(session: AsyncClientSession) -> None:
            await self.images.insert_one(doc.to_mongo(), session=session)
            await self.sources.replace_one({"_id": source["_id"]}, source, upsert=True, session=session)
            await stage(self.db, envelope, session)

        return await self._insert_in_transaction(write)

    async def add_many(self, docs: list[ImageDocument], envelopes: list[Envelope], sources: list[dict[str, Any]]) -> bool:
        """Insert many documents, their source records and their events in one transaction.

        All or nothing: False (and nothing written) if one of the images already exists,
        so the caller can fall back to :meth:`add` one by one.
        """

        async def write(session: AsyncClientSession) -> None:
            await self.images.insert_many([doc.to_mongo() for doc in docs], ordered=True, session=session)
            await self.sources.bulk_write(
                [ReplaceOne({"_id": source["_id"]}, source, upsert=True) for source in sources], ordered=True, session=session
            )
            await stage_many(self.db, envelopes, session)

        return await self._insert_in_transaction(write)

    async def add_source(self, source: dict[str, Any]) -> None:
        """Another arrival of an image already stored (same bytes from elsewhere)."""
        await self.add_sources([source])

    async def add_sources(self, sources: list[dict[str, Any]]) -> None:
        """Other arrivals of images already stored, in one round trip."""
        if sources:
            await self.sources.bulk_write(
                [UpdateOne({"_id": s["_id"]}, {"$setOnInsert": s}, upsert=True) for s in sources], ordered=False
            )

    async def add_rejection(self, record: dict[str, Any], envelope: Envelope) -> None:
        async def write(session: AsyncClientSession) -> None:
            await self.rejections.insert_one(record, session=session)
            await stage(self.db, envelope, session)

        await self._in_transaction(write)

    async def stage_once(self, envelope: Envelope) -> bool:
        """Stage an event whose id is deterministic; False if it was staged before (a resumed job)."""
        if await self.db[OUTBOX].find_one({"_id": str(envelope.id)}, {"_id": 1}):
            return False

        async def write(session: AsyncClientSession) -> None:
            await stage(self.db, envelope, session)

        return await self._insert_in_transaction(write)

    async def _insert_in_transaction(self, write: Write) -> bool:
        """Run ``write`` in a transaction; False (nothing written) if a key it inserts already exists."""
        try:
            await self._in_transaction(write)
        except DuplicateKeyError:
            return False
        except BulkWriteError as exc:
            if all(error.get("code") == 11000 for error in exc.details.get("writeErrors", [])):
                return False
            raise
        return True

    async def _in_transaction(self, write: Write) -> None:
        await in_transaction(self.db, write)
