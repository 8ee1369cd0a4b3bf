"""The ``annotation_summaries`` read model: per image, counts by label name and by type.

Always recomputed from the current annotations of the images a transaction
touches (one aggregation, one bulk upsert), never patched by deltas, so
applying it twice or late gives the same answer. Label names with dots or
dollars are safe as keys that way. The pending-change drain, bulk writes,
renames and merges call it inside their transactions.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import UpdateOne
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
    await db[ANNOTATION_SUMMARIES].bulk_write(
        [
            UpdateOne({"_id": image_id}, {"$set": {**summary, "updated_at": now}, "$inc": {"version": 1}}, upsert=True)
            for image_id, summary in summaries.items()
        ],
        ordered=False,
        session=session,
    )
