"""The read-only view search has of MongoDB's images (the source of truth)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.readmodels import IMAGES


class ImageReader:
    def __init__(self, db: AsyncDatabase) -> None:
        self.images = db[IMAGES]

    async def get(self, image_id: str) -> dict[str, Any] | None:
        return await self.images.find_one({"_id": image_id})
