"""The ``annotation_summaries`` read model, maintained inside the transaction of each change.

Bulk writes, renames and merges recompute the summaries of the images they
touch (one aggregation; label names with dots or dollars are safe as keys
that way). A single edit applies its delta with ``$inc`` in one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.annotation.adapters.store import ANNOTATIONS, LABELS
from shared.events import utcnow
from shared.readmodels import ANNOTATION_SUMMARIES


async def refresh_summaries(db: AsyncDatabase, image_ids: Iterable[str], session: AsyncClientSession) -> None:
    ids = sorted(set(image_ids))
    if not ids:
        return
    pipeline = [
        {"$match": {"image_id": {"$in": ids}, "deleted": False}},
        {"$group": {"_id": {"i": "$image_id", "l": "$label_id", "t": "$type"}, "n": {"$sum": 1}}},
    ]
    rows = await (await db[ANNOTATIONS].aggregate(pipeline, session=session)).to_list()
    label_ids = list({row["_id"]["l"] for row in rows})
    names = {
        doc["_id"]: doc["name"]
        async for doc in db[LABELS].find({"_id": {"$in": label_ids}}, {"name": 1}, session=session)
    }
    summaries: dict[str, dict] = {i: {"labels": {}, "types": {}, "count": 0} for i in ids}
    for row in rows:
        key, n = row["_id"], row["n"]
        summary = summaries[key["i"]]
        name = names.get(key["l"], key["l"])
        summary["labels"][name] = summary["labels"].get(name, 0) + n
        summary["types"][key["t"]] = summary["types"].get(key["t"], 0) + n
        summary["count"] += n
    now = utcnow()
    for image_id, summary in summaries.items():
        await db[ANNOTATION_SUMMARIES].update_one(
            {"_id": image_id},
            {"$set": {**summary, "updated_at": now}, "$inc": {"version": 1}},
            upsert=True,
            session=session,
        )


def _safe_key(name: str) -> bool:
    return "." not in name and not name.startswith("$")


async def apply_summary_delta(
    db: AsyncDatabase, image_id: str, labels: dict[str, int], types: dict[str, int], session: AsyncClientSession
) -> None:
    """One change's effect on its image's summary, in one round trip (the hot path of single edits).

    Falls back to a full recompute when a label name cannot be a field path
    (a dot, or a leading dollar); removes counts that fell to zero.
    """
    if not all(_safe_key(name) for name in labels):
        await refresh_summaries(db, [image_id], session)
        return
    labels = {k: v for k, v in labels.items() if v}
    types = {k: v for k, v in types.items() if v}
    inc = {"version": 1, "count": sum(types.values())}
    inc.update({f"labels.{k}": v for k, v in labels.items()})
    inc.update({f"types.{k}": v for k, v in types.items()})
    change = {"$inc": inc, "$set": {"updated_at": utcnow()}}
    if all(v > 0 for v in (*labels.values(), *types.values())):
        # Only increments (a create): no count can reach zero, so the new state need not come back.
        await db[ANNOTATION_SUMMARIES].update_one({"_id": image_id}, change, upsert=True, session=session)
        return
    after = await db[ANNOTATION_SUMMARIES].find_one_and_update(
        {"_id": image_id}, change, upsert=True, return_document=ReturnDocument.AFTER, session=session
    )
    empty = [f"labels.{k}" for k in labels if after.get("labels", {}).get(k, 0) <= 0]
    empty += [f"types.{k}" for k in types if after.get("types", {}).get(k, 0) <= 0]
    if empty:
        await db[ANNOTATION_SUMMARIES].update_one({"_id": image_id}, {"$unset": dict.fromkeys(empty, "")}, session=session)
