"""Annotations, their history and the summary read model: every change in one transaction.

A change writes the new current state (conditional on the version the caller
saw), one history document with the full state, who, when and the field diff,
the recomputed ``annotation_summaries`` entry of the image, and its event in
the outbox, all or nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.annotation.adapters.store import ANNOTATIONS, HISTORY, IMPORT_ERRORS, LABELS, in_transaction
from services.annotation.adapters.summaries import apply_summary_delta
from services.annotation.domain.errors import VersionConflict
from services.annotation.domain.model import changes_between, state_of
from shared.clients.mongo import insert_all
from shared.events import Envelope
from shared.outbox import stage, stage_many
from shared.readmodels import IMAGES


def history_entry(doc: dict[str, Any], action: str, changes: dict, reverted_to: int | None = None) -> dict[str, Any]:
    return {
        "_id": f"{doc['_id']}:{doc['version']}",
        "annotation_id": doc["_id"],
        "image_id": doc["image_id"],
        "version": doc["version"],
        "action": action,
        "changed_by": doc["updated_by"],
        "changed_at": doc["updated_at"],
        "changes": changes,
        "state": state_of(doc),
        "reverted_to": reverted_to,
    }


class AnnotationRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.annotations = db[ANNOTATIONS]
        self.history_docs = db[HISTORY]

    async def get(self, annotation_id: str) -> dict[str, Any] | None:
        return await self.annotations.find_one({"_id": annotation_id})

    async def get_labelled(self, annotation_id: str) -> tuple[dict[str, Any], str] | None:
        """The annotation and its label's current name, in one round trip."""
        pipeline = [
            {"$match": {"_id": annotation_id}},
            {"$lookup": {"from": LABELS, "localField": "label_id", "foreignField": "_id", "as": "_label",
                         "pipeline": [{"$project": {"name": 1}}]}},
        ]  # fmt: skip
        rows = await (await self.annotations.aggregate(pipeline)).to_list()
        if not rows:
            return None
        label = rows[0].pop("_label")
        return rows[0], label[0]["name"] if label else ""

    async def images(self, image_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Width and height of the images that exist (the ``images`` read model, written by ingest)."""
        cursor = self.db[IMAGES].find({"_id": {"$in": list(set(image_ids))}}, {"width": 1, "height": 1})
        return {doc["_id"]: doc async for doc in cursor}

    async def existing_sources(self, dataset: str, source_ids: list[str]) -> set[str]:
        cursor = self.annotations.find({"dataset": dataset, "source_id": {"$in": source_ids}}, {"source_id": 1})
        return {doc["source_id"] async for doc in cursor}

    async def record_import_error(self, key: str, record: dict[str, Any]) -> None:
        """Keep an imported annotation that failed validation, with its reason (one record per source)."""
        await self.db[IMPORT_ERRORS].replace_one({"_id": key}, record, upsert=True)

    async def add(self, docs: list[dict[str, Any]], events: list[Envelope], label_names: dict[str, str]) -> None:
        """Insert new annotations (version 1) with their history, summaries and events."""
        deltas: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        for doc in docs:
            labels, types = deltas.setdefault(doc["image_id"], ({}, {}))
            name = label_names[doc["label_id"]]
            labels[name] = labels.get(name, 0) + 1
            types[doc["type"]] = types.get(doc["type"], 0) + 1

        async def work(session: AsyncClientSession) -> None:
            await insert_all(self.annotations, docs, session)
            entries = [history_entry(doc, "created", changes_between(None, state_of(doc))) for doc in docs]
            await insert_all(self.history_docs, entries, session)
            for image_id, (labels, types) in deltas.items():
                await apply_summary_delta(self.db, image_id, labels, types, session)
            await stage_many(self.db, events, session)

        await in_transaction(self.db, work)

    async def replace(
        self, doc: dict[str, Any], entry: dict[str, Any], event: Envelope, delta: tuple[dict[str, int], dict[str, int]]
    ) -> None:
        """Write ``doc`` (version n+1) only if version n is still current; else raise VersionConflict.

        ``delta`` is the change's effect on the image summary: (label name → ±n, type → ±n).
        """

        async def work(session: AsyncClientSession) -> None:
            result = await self.annotations.replace_one(
                {"_id": doc["_id"], "version": doc["version"] - 1}, doc, session=session
            )
            if result.matched_count != 1:
                raise VersionConflict(f"Annotation {doc['_id']!r} changed since version {doc['version'] - 1}.")
            await self.history_docs.insert_one(entry, session=session)
            await apply_summary_delta(self.db, doc["image_id"], *delta, session)
            await stage(self.db, event, session)

        await in_transaction(self.db, work)

    async def history(self, annotation_id: str, after_version: int, limit: int) -> list[dict[str, Any]]:
        cursor = (
            self.history_docs.find({"annotation_id": annotation_id, "version": {"$gt": after_version}})
            .sort("version", ASCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def version(self, annotation_id: str, version: int) -> dict[str, Any] | None:
        return await self.history_docs.find_one({"annotation_id": annotation_id, "version": version})

    async def for_image(self, image_id: str, after_id: str, limit: int) -> list[dict[str, Any]]:
        cursor = (
            self.annotations.find({"image_id": image_id, "deleted": False, "_id": {"$gt": after_id}})
            .sort("_id", ASCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def for_images(self, image_ids: list[str]) -> list[dict[str, Any]]:
        cursor = self.annotations.find({"image_id": {"$in": image_ids}, "deleted": False}).sort("_id", ASCENDING)
        return await cursor.to_list()

    async def as_of(self, image_id: str, when: datetime) -> list[dict[str, Any]]:
        """The annotations of an image as they were at ``when``, rebuilt from history."""
        pipeline = [
            {"$match": {"image_id": image_id, "changed_at": {"$lte": when}}},
            {"$sort": {"annotation_id": ASCENDING, "version": DESCENDING}},
            {"$group": {"_id": "$annotation_id", "last": {"$first": "$$ROOT"}}},
            {"$match": {"last.state.deleted": False}},
            {"$sort": {"_id": ASCENDING}},
        ]
        rows = await (await self.history_docs.aggregate(pipeline)).to_list()
        return [as_document(row["last"]) for row in rows]


def as_document(entry: dict[str, Any]) -> dict[str, Any]:
    """A history entry shaped like a current annotation document (for as_of answers)."""
    return {
        "_id": entry["annotation_id"],
        **entry["state"],
        "version": entry["version"],
        "updated_at": entry["changed_at"],
        "updated_by": entry["changed_by"],
    }
