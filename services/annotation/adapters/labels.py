"""The label taxonomy in MongoDB.

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

from services.annotation.adapters.store import ANNOTATIONS, LABEL_NAMES, LABELS, in_transaction
from services.annotation.adapters.summaries import refresh_summaries
from services.annotation.domain.errors import InvalidAnnotation, LabelConflict, NotFound
from shared.events import Envelope, LabelChanged, utcnow
from shared.naming import normalize_name
from shared.outbox import stage


def label_name(raw: str) -> str:
    name = normalize_name(raw)
    if not name:
        raise InvalidAnnotation("label_name", f"The label name {raw!r} is empty once normalised.")
    return name


class LabelRepository:
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
        """The labels that these names resolve to (two queries however many names); unknown names are left out."""
        wanted = {raw: normalize_name(raw) for raw in set(raws)}
        entries = {e["_id"]: e["label_id"] async for e in self.names.find({"_id": {"$in": list(set(wanted.values()))}})}
        docs = {d["_id"]: d async for d in self.labels.find({"_id": {"$in": list(set(entries.values()))}})}
        return {raw: docs[entries[name]] for raw, name in wanted.items() if name in entries and entries[name] in docs}

    async def names_of(self, label_ids: set[str]) -> dict[str, str]:
        return {doc["_id"]: doc["name"] async for doc in self.labels.find({"_id": {"$in": list(label_ids)}}, {"name": 1})}

    async def page(self, after_name: str, limit: int) -> list[dict[str, Any]]:
        query = {"merged_into": None, "name": {"$gt": after_name}}
        return await self.labels.find(query).sort("name", ASCENDING).limit(limit).to_list()

    async def ensure(
        self, raw: str, actor: str, *, description: str | None = None, parent: str | None = None,
        external_ids: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], bool]:  # fmt: skip
        """The label a name resolves to, created if new. Returns (label, created)."""
        name = label_name(raw)
        existing = await self.resolve(name)
        if existing is not None:
            missing = {k: v for k, v in (external_ids or {}).items() if k not in existing.get("external_ids", {})}
            if missing:
                await self.labels.update_one(
                    {"_id": existing["_id"]}, {"$set": {f"external_ids.{k}": v for k, v in missing.items()}}
                )
                existing["external_ids"] = {**existing.get("external_ids", {}), **missing}
            return existing, False
        parent_id = (await self.ensure(parent, actor))[0]["_id"] if parent and label_name(parent) != name else None
        now = utcnow()
        doc = {
            "_id": uuid.uuid4().hex, "name": name, "aliases": [], "description": description, "parent_id": parent_id,
            "external_ids": dict(external_ids or {}), "merged_into": None,
            "created_at": now, "created_by": actor, "updated_at": now, "updated_by": actor,
        }  # fmt: skip

        async def work(session: AsyncClientSession) -> None:
            await self.names.insert_one({"_id": name, "label_id": doc["_id"]}, session=session)
            await self.labels.insert_one(doc, session=session)
            await self._announce(doc, "created", actor, session)

        try:
            await in_transaction(self.db, work)
        except DuplicateKeyError:  # created concurrently under the same name: use that one
            return (await self.ensure(name, actor, external_ids=external_ids))[0], False
        return doc, True

    async def _announce(self, doc: dict, change: str, actor: str, session: AsyncClientSession, **extra: Any) -> None:
        event = LabelChanged(
            label_id=doc["_id"], name=doc["name"], change=change, aliases=doc.get("aliases", []),
            changed_by=actor, changed_at=utcnow(), **extra,
        )  # fmt: skip
        await stage(self.db, Envelope.wrap(event, producer=self.producer), session)

    async def _claim(self, name: str, label_id: str, session: AsyncClientSession) -> None:
        try:
            await self.names.insert_one({"_id": name, "label_id": label_id}, session=session)
        except DuplicateKeyError:
            raise LabelConflict(f"The name {name!r} already belongs to another label.", name=name) from None

    async def _refresh_images_of(self, label_ids: list[str], session: AsyncClientSession) -> None:
        images = await self.db[ANNOTATIONS].distinct("image_id", {"label_id": {"$in": label_ids}}, session=session)
        await refresh_summaries(self.db, images, session)

    async def rename(self, label_id: str, raw: str, actor: str) -> dict[str, Any]:
        new = label_name(raw)

        async def work(session: AsyncClientSession) -> dict[str, Any]:
            doc = await self.get(label_id, session)
            old = doc["name"]
            if new == old:
                return doc
            if new in doc["aliases"]:
                await self.labels.update_one({"_id": label_id}, {"$pull": {"aliases": new}}, session=session)
            else:
                await self._claim(new, label_id, session)
            await self.names.delete_one({"_id": old}, session=session)
            await self.labels.update_one(
                {"_id": label_id}, {"$set": {"name": new, "updated_at": utcnow(), "updated_by": actor}}, session=session
            )
            doc = await self.get(label_id, session)
            await self._refresh_images_of([label_id], session)
            await self._announce(doc, "renamed", actor, session, previous_name=old)
            return doc

        return await in_transaction(self.db, work)

    async def add_alias(self, label_id: str, raw: str, actor: str) -> dict[str, Any]:
        alias = label_name(raw)

        async def work(session: AsyncClientSession) -> dict[str, Any]:
            doc = await self.get(label_id, session)
            if alias == doc["name"] or alias in doc["aliases"]:
                return doc
            await self._claim(alias, label_id, session)
            await self.labels.update_one(
                {"_id": label_id},
                {"$push": {"aliases": alias}, "$set": {"updated_at": utcnow(), "updated_by": actor}},
                session=session,
            )
            doc = await self.get(label_id, session)
            await self._announce(doc, "aliased", actor, session)
            return doc

        return await in_transaction(self.db, work)

    async def merge(self, source_id: str, target_id: str, actor: str) -> dict[str, Any]:
        """Move every annotation of ``source`` to ``target``; source's names become target's aliases."""
        if source_id == target_id:
            raise LabelConflict("A label cannot be merged into itself.")

        async def work(session: AsyncClientSession) -> dict[str, Any]:
            source, target = await self.get(source_id, session), await self.get(target_id, session)
            if source.get("merged_into") or target.get("merged_into"):
                raise LabelConflict("That label was already merged into another; merge into the surviving label.")
            moved_names = [source["name"], *source["aliases"]]
            await self.names.update_many({"label_id": source_id}, {"$set": {"label_id": target_id}}, session=session)
            now = utcnow()
            await self.labels.update_one(
                {"_id": target_id},
                {"$push": {"aliases": {"$each": moved_names}}, "$set": {"updated_at": now, "updated_by": actor}},
                session=session,
            )
            await self.labels.update_one(
                {"_id": source_id},
                {"$set": {"merged_into": target_id, "aliases": [], "updated_at": now, "updated_by": actor}},
                session=session,
            )
            await self.labels.update_many({"parent_id": source_id}, {"$set": {"parent_id": target_id}}, session=session)
            await self.db[ANNOTATIONS].update_many(
                {"label_id": source_id}, {"$set": {"label_id": target_id}}, session=session
            )
            await self._refresh_images_of([target_id], session)
            target = await self.get(target_id, session)
            await self._announce(
                source, "merged", actor, session, merged_into=target_id, previous_name=source["name"]
            )
            return target

        return await in_transaction(self.db, work)

    async def update(self, label_id: str, changes: dict[str, Any], actor: str) -> dict[str, Any]:
        """Describe, re-parent, or set external ids (``changes`` holds only the fields to set)."""

        async def work(session: AsyncClientSession) -> dict[str, Any]:
            await self.get(label_id, session)
            if changes.get("parent_id"):
                await self._check_parent(label_id, changes["parent_id"], session)
            sets = {k: v for k, v in changes.items() if k != "external_ids"}
            sets.update({f"external_ids.{k}": v for k, v in (changes.get("external_ids") or {}).items()})
            await self.labels.update_one(
                {"_id": label_id}, {"$set": {**sets, "updated_at": utcnow(), "updated_by": actor}}, session=session
            )
            doc = await self.get(label_id, session)
            change = "reparented" if "parent_id" in changes else "described" if "description" in changes else "updated"
            await self._announce(doc, change, actor, session)
            return doc

        return await in_transaction(self.db, work)

    async def _check_parent(self, label_id: str, parent_id: str, session: AsyncClientSession) -> None:
        seen, current = {label_id}, parent_id
        while current:
            if current in seen:
                raise LabelConflict("That parent would make the hierarchy a cycle.")
            seen.add(current)
            current = (await self.get(current, session)).get("parent_id")
