"""The ``annotation_summaries`` read model, recomputed inside the transaction of each change.

Recomputing (rather than incrementing) keeps label names with dots or
dollars safe as keys and makes the summary right even after a label merge or
rename; an image carries few annotations, so the aggregation is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable

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
