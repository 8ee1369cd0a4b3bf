"""Images, their sources and rejections in MongoDB, each written with its event in one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.ingest.domain.model import ImageDocument, Origin
from shared.events import Envelope
from shared.outbox import OUTBOX, ensure_outbox_indexes, stage
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
        await self.rejections.create_index([("rejected_at", DESCENDING), ("_id", DESCENDING)])
        await self.rejections.create_index([("reason", ASCENDING), ("rejected_at", DESCENDING)])
        await self.sources.create_index("image_id")
        await ensure_outbox_indexes(self.db)

    async def get(self, image_id: str) -> ImageDocument | None:
        raw = await self.images.find_one({"_id": image_id})
        return ImageDocument.model_validate(raw) if raw else None

    async def near_candidates(self, bands: list[str], limit: int = 200) -> list[dict[str, Any]]:
        """Images sharing at least one pHash band (the caller computes exact distances)."""
        cursor = self.images.find({"phash_bands": {"$in": bands}}, {"phash": 1, "dhash": 1, "created_at": 1})
        return await cursor.limit(limit).to_list()

    async def add(self, doc: ImageDocument, envelope: Envelope, source: dict[str, Any]) -> bool:
        """Insert the document, its source record and its event atomically. False if the image already exists."""

        async def write(session: AsyncClientSession) -> None:
            await self.images.insert_one(doc.to_mongo(), session=session)
            await self.sources.replace_one({"_id": source["_id"]}, source, upsert=True, session=session)
            await stage(self.db, envelope, session)

        try:
            await self._in_transaction(write)
        except DuplicateKeyError:
            return False
        return True

    async def add_source(self, source: dict[str, Any]) -> None:
        """Another arrival of an image already stored (same bytes from elsewhere)."""
        await self.sources.update_one({"_id": source["_id"]}, {"$setOnInsert": source}, upsert=True)

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

        try:
            await self._in_transaction(write)
        except DuplicateKeyError:
            return False
        return True

    async def _in_transaction(self, write: Write) -> None:
        async with self.db.client.start_session() as session:
            # with_transaction retries transient transaction errors and unknown commit results.
            await session.with_transaction(write)
