"""Images and rejections in MongoDB, each written with its event in one transaction."""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.ingest.domain.model import ImageDocument
from shared.events import Envelope
from shared.outbox import ensure_outbox_indexes, stage

from shared.readmodels import IMAGES
REJECTIONS = "rejections"


class ImageRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.images = db[IMAGES]
        self.rejections = db[REJECTIONS]

    async def ensure_indexes(self) -> None:
        await self.images.create_index([("created_at", DESCENDING)])
        await self.rejections.create_index([("rejected_at", DESCENDING)])
        await ensure_outbox_indexes(self.db)

    async def get(self, image_id: str) -> ImageDocument | None:
        raw = await self.images.find_one({"_id": image_id})
        return ImageDocument.model_validate(raw) if raw else None

    async def add(self, doc: ImageDocument, envelope: Envelope) -> bool:
        """Insert the document and stage its event atomically. False if the image already exists."""

        async def write(session: AsyncClientSession) -> None:
            await self.images.insert_one(doc.to_mongo(), session=session)
            await stage(self.db, envelope, session)

        try:
            await self._in_transaction(write)
        except DuplicateKeyError:
            return False
        return True

    async def add_rejection(self, record: dict[str, Any], envelope: Envelope) -> None:
        async def write(session: AsyncClientSession) -> None:
            await self.rejections.insert_one(record, session=session)
            await stage(self.db, envelope, session)

        await self._in_transaction(write)

    async def _in_transaction(self, write) -> None:
        async with self.db.client.start_session() as session:
            # with_transaction retries transient transaction errors and unknown commit results.
            await session.with_transaction(write)
