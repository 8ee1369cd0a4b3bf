"""Orphan blobs: objects in MinIO that no image document owns, found and removed.

Ingest writes blobs first and the document after (architecture: blob →
document + event in one transaction), so a crash, a refused transaction or a
lost race between the two leaves blobs without a document. Every blob ingest
writes is named after the SHA-256 of its image (``originals/``,
``thumbnails/``, ``standard/``); a blob is an orphan when no document in
``images`` has that id. Blobs younger than a grace period are left alone:
their document may be committing right now. Anything else under those
prefixes that does not follow the naming is counted as ``unrecognised`` and
never touched.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.background import LoopDriven, PollingLoop
from shared.clients.blobs import BlobStore
from shared.events import utcnow
from shared.readmodels import IMAGES

log = logging.getLogger(__name__)

LEASES = "maintenance_leases"
SWEEP = "orphan-sweep"
PREFIXES = ("originals/", "thumbnails/", "standard/")
_NAME = re.compile(r"^(?P<prefix>originals|thumbnails|standard)/(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{2})/(?P<sha>[0-9a-f]{64})(\.(jpg|png))?$")
PAGE = 1000


@dataclass
class OrphanReport:
    scanned: int = 0
    owned: int = 0
    too_young: int = 0
    unrecognised: int = 0
    orphans: int = 0
    removed: int = 0
    # Orphans whose image arrived while they were being removed (a re-upload racing the removal): that
    # image's blob must be written again; listed so an operator can re-ingest it.
    raced: list[str] = field(default_factory=list)
    dry_run: bool = True
    examples: list[str] = field(default_factory=list)  # the first orphan keys, for the operator

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def image_id_of(key: str) -> str | None:
    """The SHA-256 a blob key names, or None when the key is not one ingest writes."""
    match = _NAME.match(key)
    if match is None or not match["sha"].startswith(match["a"] + match["b"]):
        return None
    return match["sha"]


async def remove_orphan_blobs(
    blobs: BlobStore, db: AsyncDatabase, *, grace: timedelta = timedelta(hours=1), dry_run: bool = True
) -> OrphanReport:
    """Scan every ingest blob; remove (or with ``dry_run`` only count) those no image owns."""
    report = OrphanReport(dry_run=dry_run)
    cutoff = utcnow() - grace
    for prefix in PREFIXES:
        async for page in blobs.list_pages(prefix, PAGE):
            await _settle(page, blobs, db, cutoff, report)
    return report


async def _settle(page: list[tuple[str, datetime]], blobs: BlobStore, db: AsyncDatabase, cutoff: datetime, report: OrphanReport) -> None:
    report.scanned += len(page)
    candidates: dict[str, list[str]] = {}
    for key, modified in page:
        image_id = image_id_of(key)
        if image_id is None:
            report.unrecognised += 1
        elif modified > cutoff:
            report.too_young += 1
        else:
            candidates.setdefault(image_id, []).append(key)
    owned = {doc["_id"] async for doc in db[IMAGES].find({"_id": {"$in": list(candidates)}}, {"_id": 1})}
    orphaned = [key for image_id, keys in candidates.items() if image_id not in owned for key in keys]
    report.owned += sum(len(keys) for image_id, keys in candidates.items() if image_id in owned)
    report.orphans += len(orphaned)
    report.examples.extend(orphaned[: max(0, 20 - len(report.examples))])
    if not orphaned or report.dry_run:
        return
    # A re-upload of the same bytes rewrites the blob (a fresh modification time) before it commits
    # its document: look once more just before removing, and keep what was written since.
    still_old = [key for key in orphaned if (modified := await blobs.modified(key)) is not None and modified <= cutoff]
    await blobs.delete_many(still_old)
    report.removed += len(still_old)
    gone = {image_id_of(key) for key in still_old}
    arrived = [doc["_id"] async for doc in db[IMAGES].find({"_id": {"$in": list(gone)}}, {"_id": 1})]
    if arrived:
        log.error("images arrived while their orphaned blobs were removed; re-ingest them", extra={"image_ids": arrived})
        report.raced.extend(arrived)


class OrphanSweeper(LoopDriven):
    """Removes orphan blobs every ``interval`` (``CORPUS_ORPHAN_SWEEP_SECONDS``), on one replica per interval.

    The first sweep comes one interval after the service starts. Each replica's timer fires, and the one
    that takes the lease in ``maintenance_leases`` (held for most of an interval) sweeps; the others see
    the lease and wait for the next round. The last sweep's counts are kept on the lease for operators.
    """

    def __init__(self, blobs: BlobStore, db: AsyncDatabase, *, interval: float, grace: timedelta, owner: str) -> None:
        self.blobs, self.db, self.interval, self.grace, self.owner = blobs, db, interval, grace, owner
        self._loop = PollingLoop("orphan-sweeper", self._pass, poll_seconds=interval, wait_first=True)

    async def _pass(self) -> bool:
        if not await self._claim():
            return False
        report = await remove_orphan_blobs(self.blobs, self.db, grace=self.grace, dry_run=False)
        summary = {k: v for k, v in report.as_dict().items() if k not in ("examples", "dry_run")}
        log.info("orphan sweep done", extra=summary)
        await self.db[LEASES].update_one({"_id": SWEEP, "owner": self.owner}, {"$set": {"last_report": summary, "finished_at": utcnow()}})
        return False

    async def _claim(self) -> bool:
        now = utcnow()
        try:
            claimed = await self.db[LEASES].find_one_and_update(
                {"_id": SWEEP, "until": {"$lt": now}},
                {"$set": {"owner": self.owner, "started_at": now, "until": now + timedelta(seconds=self.interval * 0.9)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # another replica holds this round's lease
            return False
        return claimed is not None and claimed["owner"] == self.owner
