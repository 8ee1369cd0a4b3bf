"""Re-banding stored pHashes after ``CORPUS_NEAR_DUPLICATE_RADIUS`` changes.

Near-duplicates are found through pHash bands (:mod:`services.ingest.domain.hashes`):
the hash split into ``radius + 1`` parts, so the band keys depend on the radius.
An image stored under one radius cannot be found through the bands of another,
so after the radius changes, images stored before would silently stop being
near-duplicate candidates. Every image records the radius its bands were made
for (``phash_bands_radius``); the ingest service warns at start when some
images were banded for another radius, and :func:`reband` (``corpus ingest
reband``) rewrites their bands, a page at a time. It is idempotent and can be
stopped and run again: each pass takes only what is still banded otherwise.
Bands are ingest's own lookup structure, not part of the image's published
state, so no event is sent and the image's version stays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services.ingest.domain.hashes import bands
from shared.readmodels import IMAGES

log = logging.getLogger(__name__)

PAGE = 1000


@dataclass
class RebandReport:
    radius: int
    rebanded: int = 0


def _other_radius(radius: int) -> dict:
    return {"phash_bands_radius": {"$ne": radius}}


async def banded_otherwise(db: AsyncDatabase, radius: int) -> int:
    """How many images have bands made for another radius (or before the radius was recorded)."""
    return await db[IMAGES].count_documents(_other_radius(radius))


async def warn_if_banded_otherwise(db: AsyncDatabase, radius: int) -> int:
    stale = await banded_otherwise(db, radius)
    if stale:
        log.warning(
            "%d image(s) have pHash bands for another near-duplicate radius than %d and are not found as near-duplicate "
            "candidates until re-banded: run `corpus ingest reband`",
            stale,
            radius,
            extra={"images": stale, "radius": radius},
        )
    return stale


async def reband(db: AsyncDatabase, radius: int, *, page: int = PAGE, progress: Callable[[int], None] | None = None) -> RebandReport:
    """Give every image banded for another radius the bands of ``radius``, ``page`` images per bulk write."""
    report = RebandReport(radius)
    images = db[IMAGES]
    after = ""
    while True:
        query = {**_other_radius(radius), "_id": {"$gt": after}}
        batch = await images.find(query, {"phash": 1}).sort("_id", 1).limit(page).to_list()
        if not batch:
            return report
        keys = {doc["_id"]: bands(doc["phash"], radius) if radius else [] for doc in batch}
        # Conditional on the pHash read: an image replaced meanwhile keeps what its writer gave it.
        await images.bulk_write(
            [
                UpdateOne({"_id": doc["_id"], "phash": doc["phash"]}, {"$set": {"phash_bands": keys[doc["_id"]], "phash_bands_radius": radius}})
                for doc in batch
            ],
            ordered=False,
        )
        report.rebanded += len(batch)
        after = batch[-1]["_id"]
        if progress is not None:
            progress(len(batch))
