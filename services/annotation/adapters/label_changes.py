"""Changing the taxonomy: rename, alias, merge, describe, re-parent.

Each change is one transaction with its ``label.changed`` event; a rename or
merge also recomputes the summaries of the images whose annotations carry the
label, so search's label fields follow.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from services.annotation.adapters.labels import LabelStore, label_name
from services.annotation.adapters.merged_labels import move_off_merged, survivors
from services.annotation.adapters.store import ANNOTATIONS
from services.annotation.adapters.summaries import refresh_summaries
from services.annotation.domain.errors import InvalidAnnotation, LabelConflict
from services.annotation.domain.fields import check_external_ids
from shared.clients.mongo import LONG_TRANSACTION_SECONDS, in_transaction
from shared.events import utcnow
from shared.keypoint_schema import checked_schema


class LabelRepository(LabelStore):
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

        return await in_transaction(self.db, work, seconds=LONG_TRANSACTION_SECONDS)

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

        return await in_transaction(self.db, work, seconds=LONG_TRANSACTION_SECONDS)

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
            await self._take_place_of(source, target, session)
            await self.db[ANNOTATIONS].update_many(
                {"label_id": source_id}, {"$set": {"label_id": target_id}}, session=session
            )
            await self._refresh_images_of([target_id], session)
            target = await self.get(target_id, session)
            await self._announce(
                source, "merged", actor, session, merged_into=target_id, previous_name=source["name"]
            )
            return target

        target = await in_transaction(self.db, work, seconds=LONG_TRANSACTION_SECONDS)
        # Writes committed while the merge ran that it did not see (a create of the merged label's name)
        stragglers = await self.db[ANNOTATIONS].find({"label_id": source_id}, {"label_id": 1, "image_id": 1}).to_list()
        await self.settle(stragglers, actor)
        return target

    async def settle(self, docs: list[dict[str, Any]], actor: str) -> None:
        """Move those of these committed annotations (``_id``, ``label_id``, ``image_id``) that are on a merged
        label to its survivor, with their images' summaries, and announce the merge again so that search
        re-projects them (:mod:`services.annotation.adapters.merged_labels`). One query when none is."""
        if not docs or not await survivors(self.db, {doc["label_id"] for doc in docs}):
            return

        async def work(session: AsyncClientSession) -> None:
            moved = await move_off_merged(self.db, docs, session)
            await refresh_summaries(self.db, {doc["image_id"] for doc in docs if doc["label_id"] in moved}, session)
            for merged_id, survivor in moved.items():
                source = await self.get(merged_id, session)
                await self._announce(source, "merged", actor, session, merged_into=survivor, previous_name=source["name"])

        await in_transaction(self.db, work, seconds=LONG_TRANSACTION_SECONDS)

    async def update(self, label_id: str, changes: dict[str, Any], actor: str) -> dict[str, Any]:
        """Describe, re-parent, or set external ids (``changes`` holds only the fields to set)."""

        async def work(session: AsyncClientSession) -> dict[str, Any]:
            before = await self.get(label_id, session)
            if changes.get("parent_id"):
                await self._check_parent(label_id, changes["parent_id"], session)
            sets = {k: v for k, v in changes.items() if k not in ("external_ids", "keypoints", "skeleton")}
            if "keypoints" in changes or "skeleton" in changes:
                sets.update(_schema_change(before, changes))
            given = check_external_ids(changes.get("external_ids") or {})  # schemes checked: safe as field paths
            sets.update({f"external_ids.{k}": v for k, v in given.items()})
            await self.labels.update_one(
                {"_id": label_id}, {"$set": {**sets, "updated_at": utcnow(), "updated_by": actor}}, session=session
            )
            doc = await self.get(label_id, session)
            change = "reparented" if "parent_id" in changes else "described" if "description" in changes else "updated"
            await self._announce(doc, change, actor, session)
            return doc

        return await in_transaction(self.db, work, seconds=LONG_TRANSACTION_SECONDS)

    async def _check_parent(self, label_id: str, parent_id: str, session: AsyncClientSession) -> None:
        seen, current = {label_id}, parent_id
        while current:
            if current in seen:
                raise LabelConflict("That parent would make the hierarchy a cycle.")
            seen.add(current)
            current = (await self.get(current, session)).get("parent_id")

    async def _take_place_of(self, source: dict, target: dict, session: AsyncClientSession) -> None:
        """The survivor of a merge takes the merged label's place in the hierarchy: the merged label's
        children become its children (never itself), and if it sat below the merged label, it moves up to
        the merged label's parent (or to none), so the hierarchy stays a tree without cycles."""
        source_id, target_id = source["_id"], target["_id"]
        if await self._descends_from(target, source_id, session):
            await self.labels.update_one(
                {"_id": target_id}, {"$set": {"parent_id": source.get("parent_id")}}, session=session
            )
        await self.labels.update_many(
            {"parent_id": source_id, "_id": {"$ne": target_id}}, {"$set": {"parent_id": target_id}}, session=session
        )

    async def _descends_from(self, doc: dict, ancestor_id: str, session: AsyncClientSession) -> bool:
        seen, current = {doc["_id"]}, doc.get("parent_id")
        while current and current not in seen:  # ``seen``: a cycle already stored ends the walk
            if current == ancestor_id:
                return True
            seen.add(current)
            parent = await self.labels.find_one({"_id": current}, {"parent_id": 1}, session=session)
            current = parent.get("parent_id") if parent else None
        return False


def _schema_change(before: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The label's keypoint fields after a PATCH: ``keypoints: null`` removes the schema, a skeleton alone is
    checked against the names the label has. Annotations already made keep their points."""
    names = changes.get("keypoints", before.get("keypoints"))
    if "keypoints" in changes and names is None:
        if changes.get("skeleton"):
            raise InvalidAnnotation("keypoint_schema", "A skeleton needs keypoint names; send 'keypoints' with it.")
        return {"keypoints": None, "skeleton": None}
    skeleton = changes["skeleton"] if "skeleton" in changes else (before.get("skeleton") if "keypoints" not in changes else None)
    try:
        names, edges = checked_schema(names, skeleton)
    except ValueError as exc:
        raise InvalidAnnotation("keypoint_schema", f"{exc}.") from None
    return {"keypoints": names, "skeleton": edges}
