"""The read-only view search has of MongoDB (the source of truth): images and their annotation summaries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.search.domain.documents import external_version
from shared.readmodels import ANNOTATION_SUMMARIES, IMAGES

# The annotation service's current-state collection and its labels, read (never written) for the image detail.
ANNOTATIONS = "annotations"
LABELS = "labels"
# Kept inside an annotation for the annotation service's own use: its history, and the changes its drain has
# not yet moved out (``pending``) with their count (``pending_n``). Its API never shows them.
INTERNAL_ANNOTATION_FIELDS = {"history": 0, "pending": 0, "pending_n": 0}

ImageState = tuple[dict[str, Any], dict[str, Any] | None]


class ImageReader:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.images = db[IMAGES]
        self.summaries = db[ANNOTATION_SUMMARIES]

    async def get(self, image_id: str) -> dict[str, Any] | None:
        return await self.images.find_one({"_id": image_id})

    async def summary(self, image_id: str) -> dict[str, Any] | None:
        return await self.summaries.find_one({"_id": image_id})

    async def annotations(self, image_id: str, limit: int) -> list[dict[str, Any]]:
        """The image's current annotations in id order, each with its label's name (``label``, empty for a
        label that is gone) and without the fields kept for the annotation service's own use."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"image_id": image_id, "deleted": False}},
            {"$sort": {"_id": 1}},
            {"$limit": limit},
            {"$project": INTERNAL_ANNOTATION_FIELDS},
            {"$lookup": {"from": LABELS, "localField": "label_id", "foreignField": "_id", "as": "label",
                         "pipeline": [{"$project": {"name": 1}}]}},
            {"$set": {"label": {"$ifNull": [{"$first": "$label.name"}, ""]}}},
        ]  # fmt: skip
        return await (await self.db[ANNOTATIONS].aggregate(pipeline)).to_list()

    async def load(self, image_ids: Iterable[str]) -> list[ImageState]:
        """The images that exist among ``image_ids``, each with its summary (or None)."""
        ids = list(set(image_ids))
        images = [doc async for doc in self.images.find({"_id": {"$in": ids}})]
        return await self._with_summaries(images)

    async def _with_summaries(self, images: list[dict[str, Any]]) -> list[ImageState]:
        ids = [doc["_id"] for doc in images]
        summaries = {doc["_id"]: doc async for doc in self.summaries.find({"_id": {"$in": ids}})}
        return [(image, summaries.get(image["_id"])) for image in images]

    async def count(self) -> int:
        return await self.images.estimated_document_count()

    async def stream(self, batch: int) -> AsyncIterator[list[ImageState]]:
        """Every image with its summary, in batches (id order)."""
        chunk: list[dict[str, Any]] = []
        async for doc in self.images.find({}).sort("_id", 1).batch_size(batch):
            chunk.append(doc)
            if len(chunk) >= batch:
                yield await self._with_summaries(chunk)
                chunk = []
        if chunk:
            yield await self._with_summaries(chunk)

    async def expected_versions(self) -> dict[str, int]:
        """image id → the external version its search document should carry."""
        summary_versions = {doc["_id"]: int(doc.get("version", 0)) async for doc in self.summaries.find({}, {"version": 1})}
        return {
            doc["_id"]: external_version(int(doc.get("version", 1)), summary_versions.get(doc["_id"], 0))
            async for doc in self.images.find({}, {"version": 1})
        }

    async def ids_with_labels(self, names: Iterable[str]) -> set[str]:
        """Images whose summary carries any of these label names (keys may hold dots: $getField)."""
        names = [n for n in set(names) if n]
        if not names:
            return set()
        carries = [{"$ne": [{"$type": {"$getField": {"field": n, "input": "$labels"}}}, "missing"]} for n in names]
        cursor = self.summaries.find({"$expr": {"$or": carries}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}
