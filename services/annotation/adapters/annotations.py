"""Annotations and their history: every change is ONE atomic single-document write.

A single edit (create, update, delete, revert) writes the new current state
(conditional on the version the caller saw) together with the change itself
in the annotation's ``pending`` list:
the history document (full state, who, when, field diff) and the outbox
document of its event. That write is acknowledged once it is majority-committed
and journaled, so the change and its history are durable before the caller
hears of it, in one round trip instead of a five-step transaction.

:mod:`services.annotation.adapters.pending` then moves pending changes, in
batches and in one transaction each, into ``annotation_history``, the
``annotation_summaries`` read model (recomputed from the current state) and
the outbox. Reads of history (:meth:`history`, :meth:`version`,
:meth:`as_of`) merge the pending changes in, so they never lag behind a write.
They read the pending list *before* the history collection: a change drained
in between is then found in the collection, never missed.

Bulk creates and imports, where one transaction is paid once for hundreds of
annotations, write history, summaries and events in that transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.annotation.adapters.store import (
    ANNOTATIONS, HISTORY, IMPORT_ERRORS, LABELS, PENDING, PENDING_COUNT,
)  # fmt: skip
from services.annotation.adapters.summaries import refresh_summaries
from services.annotation.domain.errors import VersionConflict
from services.annotation.domain.export_formats import GEOMETRIC
from services.annotation.domain.model import changes_between, state_of
from shared.clients.mongo import in_transaction, insert_all
from shared.events import Envelope
from shared.outbox import outbox_entry, stage_many
from shared.readmodels import IMAGES

HIDE_PENDING = {PENDING: 0, PENDING_COUNT: 0}
_BOXED = {"bbox.0": {"$exists": True}}  # a box that is not empty
# The annotations each export format takes: the queries of its files' ``takes`` (domain/export_formats.py).
EXPORTED: dict[str, dict[str, Any]] = {
    "coco": {"type": {"$in": list(GEOMETRIC)}}, "yolo": _BOXED, "yolo-seg": _BOXED, "voc": _BOXED,
    "yolo-pose": {"$or": [_BOXED, {"type": "keypoints"}]}, "imagefolder": {"type": "classification"},
}  # fmt: skip


def pending_change(entry: dict[str, Any], event: Envelope) -> dict[str, Any]:
    """A change as it waits inside its annotation: the history document and the event's outbox document."""
    return {"history": entry, "event": outbox_entry(event)}


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
        return await self.annotations.find_one({"_id": annotation_id}, HIDE_PENDING)

    async def get_many(self, annotation_ids: list[str]) -> list[dict[str, Any]]:
        return await self.annotations.find({"_id": {"$in": annotation_ids}}, HIDE_PENDING).to_list()

    async def get_labelled(self, annotation_id: str) -> tuple[dict[str, Any], str] | None:
        """The annotation and its label's current name, in one round trip."""
        pipeline = [
            {"$match": {"_id": annotation_id}},
            {"$project": HIDE_PENDING},
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

    async def existing_sources(self, dataset: str, image_id: str, source_ids: list[str]) -> set[str]:
        """The source ids of ``image_id`` this dataset's imports made already: an import is keyed on the image
        too, since two imports under one name (a/train, b/train; COCO train and val) reuse source ids."""
        query = {"dataset": dataset, "image_id": image_id, "source_id": {"$in": source_ids}}
        return {doc["source_id"] async for doc in self.annotations.find(query, {"source_id": 1})}

    async def record_import_error(self, key: str, record: dict[str, Any]) -> None:
        """Keep an imported annotation that failed validation, with its reason (one record per source)."""
        await self.db[IMPORT_ERRORS].replace_one({"_id": key}, record, upsert=True)

    async def import_errors(self, filters: dict[str, str], after_id: str, limit: int) -> list[dict[str, Any]]:
        """Refused imported annotations matching ``filters`` (import_id, dataset), by record id."""
        cursor = self.db[IMPORT_ERRORS].find({**filters, "_id": {"$gt": after_id}}).sort("_id", ASCENDING).limit(limit)
        return await cursor.to_list()

    async def add(self, docs: list[dict[str, Any]], events: list[Envelope]) -> bool:
        """Insert new annotations (version 1). Returns True when their changes were left pending.

        One annotation (an interactive create) is one atomic insert with its creation pending inside.
        Several (bulk, import) go in one transaction with their history, the recomputed summaries of
        their images and their events, all or none: a batch pays for the transaction once.
        """
        entries = [history_entry(doc, "created", changes_between(None, state_of(doc))) for doc in docs]
        if len(docs) == 1:
            await self.annotations.insert_one({**docs[0], PENDING: [pending_change(entries[0], events[0])], PENDING_COUNT: 1})
            return True

        async def work(session: AsyncClientSession) -> None:
            await insert_all(self.annotations, docs, session)
            await insert_all(self.history_docs, entries, session)
            await refresh_summaries(self.db, {doc["image_id"] for doc in docs}, session)
            await stage_many(self.db, events, session)

        if docs:
            await in_transaction(self.db, work)
        return False

    async def write_version(self, doc: dict[str, Any], entry: dict[str, Any], event: Envelope) -> None:
        """Write ``doc`` (version n+1) with its change, only if version n is still current; else VersionConflict."""
        fields = {k: v for k, v in doc.items() if k not in ("_id", PENDING, PENDING_COUNT)}
        result = await self.annotations.update_one(
            {"_id": doc["_id"], "version": doc["version"] - 1},
            {"$set": fields, "$push": {PENDING: pending_change(entry, event)}, "$inc": {PENDING_COUNT: 1}},
        )
        if result.matched_count != 1:
            raise VersionConflict(f"Annotation {doc['_id']!r} changed since version {doc['version'] - 1}.")

    async def _pending_of(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """The history documents still waiting inside the annotations that ``query`` matches."""
        cursor = self.annotations.find({**query, PENDING_COUNT: {"$gt": 0}}, {PENDING: 1})
        return [change["history"] async for doc in cursor for change in doc[PENDING]]

    async def history(self, annotation_id: str, after_version: int, limit: int) -> list[dict[str, Any]]:
        pending = [e for e in await self._pending_of({"_id": annotation_id}) if e["version"] > after_version]
        cursor = (
            self.history_docs.find({"annotation_id": annotation_id, "version": {"$gt": after_version}})
            .sort("version", ASCENDING)
            .limit(limit)
        )
        merged = {entry["version"]: entry for entry in [*pending, *await cursor.to_list()]}
        return [merged[version] for version in sorted(merged)][:limit]

    async def version(self, annotation_id: str, version: int) -> dict[str, Any] | None:
        for entry in await self._pending_of({"_id": annotation_id}):
            if entry["version"] == version:
                return entry
        return await self.history_docs.find_one({"annotation_id": annotation_id, "version": version})

    async def for_image(self, image_id: str, after_id: str, limit: int) -> list[dict[str, Any]]:
        cursor = (
            self.annotations.find({"image_id": image_id, "deleted": False, "_id": {"$gt": after_id}}, HIDE_PENDING)
            .sort("_id", ASCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    def snapshot(self) -> AsyncClientSession:
        """A session whose reads all see one moment (``readConcern: snapshot``): an export's first look at
        which labels its annotations carry and its read of them page by page agree, whatever is written
        in between."""
        return self.db.client.start_session(snapshot=True)

    async def label_ids_of(
        self, image_ids: list[str], dataset: str | None, fmt: str, session: AsyncClientSession
    ) -> list[str]:
        """The labels of the images' current annotations that export format ``fmt`` takes (:data:`EXPORTED`;
        ``dataset``: only that dataset's and those made by hand, as :func:`_of_images`)."""
        query = {**_of_images(image_ids, dataset), **EXPORTED[fmt]}
        return sorted(await self.annotations.distinct("label_id", query, session=session))

    async def pages_of(
        self, image_ids: list[str], dataset: str | None, fmt: str, label_ids: list[str], size: int, session: AsyncClientSession
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The images' current annotations that ``fmt`` takes, of ``label_ids``, ``size`` at a time: a
        selection's annotations need not fit in memory together. COCO's by ``_id`` (it numbers them so); the
        others' by image, then by ``_id``, so that each image's come together."""
        query = {**_of_images(image_ids, dataset), **EXPORTED[fmt], "label_id": {"$in": label_ids}}
        order = [("_id", ASCENDING)] if fmt == "coco" else [("image_id", ASCENDING), ("_id", ASCENDING)]
        cursor = self.annotations.find(query, HIDE_PENDING, session=session).sort(order).batch_size(size)
        try:
            while page := await cursor.to_list(size):
                yield page
        finally:
            await cursor.close()

    async def as_of(self, image_id: str, when: datetime) -> list[dict[str, Any]]:
        """The annotations of an image as they were at ``when``, rebuilt from history (pending changes too)."""
        latest: dict[str, dict[str, Any]] = {}
        for entry in await self._pending_of({"image_id": image_id}):
            if entry["changed_at"] <= when and entry["version"] > latest.get(entry["annotation_id"], {}).get("version", 0):
                latest[entry["annotation_id"]] = entry
        pipeline = [
            {"$match": {"image_id": image_id, "changed_at": {"$lte": when}}},
            {"$sort": {"annotation_id": ASCENDING, "version": DESCENDING}},
            {"$group": {"_id": "$annotation_id", "last": {"$first": "$$ROOT"}}},
        ]
        for row in await (await self.history_docs.aggregate(pipeline)).to_list():
            if row["last"]["version"] > latest.get(row["_id"], {}).get("version", 0):
                latest[row["_id"]] = row["last"]
        return [as_document(latest[i]) for i in sorted(latest) if not latest[i]["state"]["deleted"]]


def _of_images(image_ids: list[str], dataset: str | None) -> dict[str, Any]:
    """The images' current annotations; with ``dataset``, only that dataset's and those made by hand (no dataset)."""
    query: dict[str, Any] = {"image_id": {"$in": image_ids}, "deleted": False}
    if dataset is not None:
        query["dataset"] = {"$in": [dataset, None]}  # None also matches documents without the field
    return query


def as_document(entry: dict[str, Any]) -> dict[str, Any]:
    """A history entry shaped like a current annotation document (for as_of answers)."""
    return {
        "_id": entry["annotation_id"],
        **entry["state"],
        "version": entry["version"],
        "updated_at": entry["changed_at"],
        "updated_by": entry["changed_by"],
    }
