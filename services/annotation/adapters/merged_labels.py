"""Annotations that land on a label after it was merged, moved to the label that survived.

A merge moves its label's annotations after the label's own change commits (in batches:
:mod:`services.annotation.adapters.label_moves`), but a write prepared before that commit can land on the
merged label after it: an edit that read the annotation first writes its whole state back, old label
included (its version check passes, since a merge changes no version); a create that resolved the name first
inserts a new document the merge never saw. A tester saw 40 of 40 annotations edited during a merge stay on
the merged label for good, under its old name in search. Three places close the gap, each after the write it
follows is committed, so one of them always sees the merge:

- the pending-change drain moves the annotations it drains (every single create, edit, delete and revert);
- a bulk create or import batch checks its labels once committed;
- the merge's own batches, which run after the label's change commits and until none is left on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.annotation.adapters.store import ANNOTATIONS, LABELS


async def survivors(db: AsyncDatabase, label_ids: Iterable[str], session: AsyncClientSession | None = None) -> dict[str, str]:
    """Of these labels, each one that was merged, with the label it resolves to now (merges followed)."""
    labels = db[LABELS]
    query = {"_id": {"$in": sorted(set(label_ids))}, "merged_into": {"$ne": None}}
    merged = {doc["_id"]: doc["merged_into"] async for doc in labels.find(query, {"merged_into": 1}, session=session)}
    found = {}
    for label_id, into in merged.items():
        seen = {label_id}
        while into not in seen:  # ``seen``: a cycle stored by mistake ends the walk
            seen.add(into)
            further = await labels.find_one({"_id": into}, {"merged_into": 1}, session=session)
            if not (further and further.get("merged_into")):
                break
            into = further["merged_into"]
        found[label_id] = into
    return found


async def move_off_merged(db: AsyncDatabase, docs: list[dict[str, Any]], session: AsyncClientSession) -> dict[str, str]:
    """Move those of these annotations (``_id``, ``label_id``) that are on a merged label to its survivor;
    return the merged labels found, each with its survivor. The caller recomputes the images' summaries."""
    moved = await survivors(db, {doc["label_id"] for doc in docs}, session)
    for merged_id, survivor in moved.items():
        ids = [doc["_id"] for doc in docs if doc["label_id"] == merged_id]
        await db[ANNOTATIONS].update_many({"_id": {"$in": ids}, "label_id": merged_id}, {"$set": {"label_id": survivor}}, session=session)
    return moved
