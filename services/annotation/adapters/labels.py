"""The label taxonomy in MongoDB: reading, resolving and creating labels.

``labels`` holds one document per label; ``label_names`` maps every
normalised name and alias to its label (the name is the ``_id``), so two
labels can never share a name or alias, even under concurrent creation.
Every change stages its ``label.changed`` event in the same transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.annotation.adapters.store import LABEL_NAMES, LABELS
from services.annotation.domain.errors import InvalidAnnotation, NotFound
from services.annotation.domain.fields import check_external_ids, check_label_name
from shared.clients.mongo import in_transaction
from shared.events import Envelope, LabelChanged, utcnow
from shared.keypoint_schema import KeypointSchema
from shared.naming import normalize_name
from shared.outbox import stage


def label_name(raw: str) -> str:
    """``raw`` normalised, or InvalidAnnotation: not text, empty, too long, control characters."""
    if not isinstance(raw, str):
        raise InvalidAnnotation("label_name", "A label name must be text.")
    return check_label_name(raw, normalize_name(raw))


class LabelStore:
    """Reading labels, resolving names, creating labels on first use."""

    def __init__(self, db: AsyncDatabase, producer: str) -> None:
        self.db = db
        self.producer = producer
        self.labels = db[LABELS]
        self.names = db[LABEL_NAMES]

    async def get(self, label_id: str, session: AsyncClientSession | None = None) -> dict[str, Any]:
        doc = await self.labels.find_one({"_id": label_id}, session=session)
        if doc is None:
            raise NotFound(f"No label has id {label_id!r}.")
        return doc

    async def live(self, label_id: str) -> dict[str, Any]:
        """The label, following merges to the one that survived."""
        doc = await self.get(label_id)
        while doc.get("merged_into"):
            doc = await self.get(doc["merged_into"])
        return doc

    async def resolve(self, raw: str) -> dict[str, Any] | None:
        entry = await self.names.find_one({"_id": label_name(raw)})
        return await self.labels.find_one({"_id": entry["label_id"]}) if entry else None

    async def resolve_many(self, raws: list[str]) -> dict[str, dict[str, Any]]:
        """The labels that these names resolve to (one round trip); unknown names are left out."""
        wanted = {raw: normalize_name(raw) for raw in set(raws)}
        pipeline = [
            {"$match": {"_id": {"$in": list(set(wanted.values()))}}},
            {"$lookup": {"from": LABELS, "localField": "label_id", "foreignField": "_id", "as": "label"}},
        ]
        found = {e["_id"]: e["label"][0] for e in await (await self.names.aggregate(pipeline)).to_list() if e["label"]}
        return {raw: found[name] for raw, name in wanted.items() if name in found}

    async def names_of(self, label_ids: set[str]) -> dict[str, str]:
        return {doc["_id"]: doc["name"] async for doc in self.labels.find({"_id": {"$in": list(label_ids)}}, {"name": 1})}

    async def page(self, after_name: str, limit: int) -> list[dict[str, Any]]:
        query = {"merged_into": None, "name": {"$gt": after_name}}
        return await self.labels.find(query).sort("name", ASCENDING).limit(limit).to_list()

    async def ensure(
        self, raw: str, actor: str, *, description: str | None = None, parent: str | None = None,
        external_ids: dict[str, str] | None = None, schema: KeypointSchema | None = None,
    ) -> tuple[dict[str, Any], bool]:  # fmt: skip
        """The label a name resolves to, created if new. Returns (label, created). An existing label gains
        the external ids it lacks, and ``schema`` (keypoint names and skeleton) if it has none."""
        name = label_name(raw)
        external_ids = check_external_ids(external_ids or {})  # their schemes become field paths below
        existing = await self.resolve(name)
        if existing is not None:
            sets = {f"external_ids.{k}": v for k, v in external_ids.items() if k not in existing.get("external_ids", {})}
            if sets:
                await self.labels.update_one({"_id": existing["_id"]}, {"$set": sets})
            if schema is not None and not existing.get("keypoints"):
                # Only where it still has none: of two imports with different schemas, the first one's stays.
                await self.labels.update_one({"_id": existing["_id"], "keypoints": None}, {"$set": {"keypoints": schema[0], "skeleton": schema[1]}})
            if sets or schema is not None:
                existing = await self.get(existing["_id"])
            return existing, False
        parent_id = (await self.ensure(parent, actor))[0]["_id"] if parent and label_name(parent) != name else None
        now = utcnow()
        doc = {
            "_id": uuid.uuid4().hex, "name": name, "aliases": [], "description": description, "parent_id": parent_id,
            "external_ids": external_ids, "merged_into": None,
            "keypoints": schema[0] if schema else None, "skeleton": schema[1] if schema else None,
            "created_at": now, "created_by": actor, "updated_at": now, "updated_by": actor,
        }  # fmt: skip

        async def work(session: AsyncClientSession) -> None:
            await self.names.insert_one({"_id": name, "label_id": doc["_id"]}, session=session)
            await self.labels.insert_one(doc, session=session)
            await self._announce(doc, "created", actor, session)

        try:
            await in_transaction(self.db, work)
        except DuplicateKeyError:  # created concurrently under the same name: use that one
            return (await self.ensure(name, actor, external_ids=external_ids, schema=schema))[0], False
        return doc, True

    async def _announce(self, doc: dict, change: str, actor: str, session: AsyncClientSession, **extra: Any) -> LabelChanged:
        """Stage the ``label.changed`` event of this change; return it (a rename or merge announces it again)."""
        event = LabelChanged(
            label_id=doc["_id"], name=doc["name"], change=change, aliases=doc.get("aliases", []),
            changed_by=actor, changed_at=utcnow(), **extra,
        )  # fmt: skip
        await stage(self.db, Envelope.wrap(event, producer=self.producer), session)
        return event
