"""Changing the taxonomy: rename, alias, merge, describe, re-parent.

Each change is one transaction with its ``label.changed`` event. A rename or
merge then recomputes the summaries of the label's images (a merge moving its
annotations to the survivor) in small batches, each its own transaction, and
announces the change again once they are done, so search's label fields follow
(:mod:`services.annotation.adapters.label_moves`).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from services.annotation.adapters.label_moves import MERGE, MOVE_BATCH, RENAME, finish_move, record_move
from services.annotation.adapters.labels import LabelStore, label_name
from services.annotation.adapters.merged_labels import move_off_merged, survivors
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

    async def rename(self, label_id: str, raw: str, actor: str, *, batch: int = MOVE_BATCH) -> dict[str, Any]:
        """Rename the label (:meth:`rename_label`), then recompute its images' summaries in batches."""
        doc, move = await self.rename_label(label_id, raw, actor)
        if move is not None:
            await finish_move(self.db, move, batch=batch)
        return doc

    async def rename_label(self, label_id: str, raw: str, actor: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The label side of a rename, in one short transaction, with the record of the summaries to recompute
        (:mod:`services.annotation.adapters.label_moves`; None when the name does not change)."""
        new = label_name(raw)

        async def work(session: AsyncClientSession) -> tuple[dict[str, Any], dict[str, Any] | None]:
            doc = await self.get(label_id, session)
            old = doc["name"]
            if new == old:
                return doc, None
            if new in doc["aliases"]:
                await self.labels.update_one({"_id": label_id}, {"$pull": {"aliases": new}}, session=session)
            else:
                await self._claim(new, label_id, session)
            await self.names.delete_one({"_id": old}, session=session)
            await self.labels.update_one(
                {"_id": label_id}, {"$set": {"name": new, "updated_at": utcnow(), "updated_by": actor}}, session=session
            )
            doc = await self.get(label_id, session)
            event = await self._announce(doc, "renamed", actor, session, previous_name=old)
            return doc, await record_move(self.db, RENAME, label_id, event, self.producer, session)

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

        return await in_transaction(self.db, work, seconds=LONG_TRANSACTION_SECONDS)

    async def merge(self, source_id: str, target_id: str, actor: str, *, batch: int = MOVE_BATCH) -> dict[str, Any]:
        """Merge ``source`` into ``target`` (:meth:`merge_label`), then move source's annotations in batches."""
        target, move = await self.merge_label(source_id, target_id, actor)
        await finish_move(self.db, move, batch=batch)
        return target

    async def merge_label(self, source_id: str, target_id: str, actor: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The label side of a merge, in one short transaction: source's names become target's aliases, target
        takes source's place in the hierarchy, and the move of source's annotations is recorded
        (:mod:`services.annotation.adapters.label_moves`). Returns the survivor and that record."""
        if source_id == target_id:
            raise LabelConflict("A label cannot be merged into itself.")

        async def work(session: AsyncClientSession) -> tuple[dict[str, Any], dict[str, Any]]:
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
            target = await self.get(target_id, session)
            event = await self._announce(
                source, "merged", actor, session, merged_into=target_id, previous_name=source["name"]
            )
            return target, await record_move(self.db, MERGE, source_id, event, self.producer, session)

        return await in_transaction(self.db, work)

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
