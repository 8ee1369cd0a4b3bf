"""``reindex`` and ``reconcile``: the mirror rebuilt from, and checked against, MongoDB.

- reindex: a fresh index of the current mapping, filled from MongoDB with the
  same projection the events use, then the alias moves to it in one atomic
  ``update_aliases`` call (searches answer from the old index until then), the
  old index is retired (kept for the cursors' snapshots opened on it, then
  dropped by ``RetiredSweeper`` or the next reindex), and a reconcile pass
  catches the events that landed in the old index during the build.
- reconcile: the index's ids and versions first, then MongoDB's (in that
  order, so an image ingested in between shows as missing, never as extra),
  compared; missing and stale images re-projected, extra ones deleted, and
  ahead ones (indexed at a newer version than MongoDB's) left for reindex:
  no write can lower a document's external version (``AHEAD``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from services.search.adapters.index import BulkWriteError, ImageIndex, IndexBusy
from services.search.domain.drift import Drift, compare
from services.search.projection import Projector
from shared.background import LoopDriven, PollingLoop

# (phase, done, total or None)
Progress = Callable[[str, int, int | None], None]
# A job's work: given where to report progress, it returns its result.
Work = Callable[[Progress], Awaitable[dict[str, Any]]]
BATCH = 1000
SWEEP_SECONDS_MAX = 60.0  # how often, at most, retired indices are looked at

log = logging.getLogger(__name__)


def _quiet(phase: str, done: int, total: int | None) -> None:
    return None


class Named:
    """A count of documents and a few of them by id, each with why."""

    EXAMPLES = 20

    def __init__(self) -> None:
        self.count = 0
        self.examples: dict[str, str] = {}

    def add(self, doc_id: str, why: str) -> None:
        self.count += 1
        if len(self.examples) < self.EXAMPLES:
            self.examples[doc_id] = why[:300]


class Refusals(Named):
    """Documents Elasticsearch refuses for themselves (a value its mapping cannot take): a rebuild or a repair
    leaves them out, counts them and names a few, and goes on with the rest. A refusal for load is not one:
    it ends the job (``IndexBusy``), to be run again."""

    async def tolerate(self, write: Awaitable[dict[str, str]]) -> dict[str, str]:
        """The write's outcome (id → what became of it) for the documents it did not refuse."""
        try:
            return await write
        except IndexBusy:
            raise
        except BulkWriteError as error:
            for doc_id, why in error.refused.items():
                self.add(doc_id, why)
            return error.outcome

    def report(self) -> dict[str, Any]:
        return {"refused": self.count, "refused_examples": self.examples}


class Unrepaired(Named):
    """Drift a repair leaves as it is, each with what would end it."""

    def report(self) -> dict[str, Any]:
        return {"unrepaired": self.count, "unrepaired_examples": self.examples}


# Elasticsearch takes an external version only above the one it holds (``external_gte``: at or above),
# and ``force`` is gone since 7.0: no write can take a document back to MongoDB's lower version. Deleting
# it first does not help either: the delete's version is kept as a tombstone for ``index.gc_deletes``
# (60 s) and refuses the write, so the image would be left out of search. A fresh index holds no versions.
AHEAD = (
    "indexed at version {held}, newer than MongoDB's {expected} (MongoDB restored from an older state?); "
    "Elasticsearch takes no lower version over it, so it is left as it is: run reindex"
)
TOMBSTONE = (
    "not written: a document of this id was deleted from the index less than index.gc_deletes (60 s) ago, "
    "and Elasticsearch keeps that deletion's version and refuses a lower one; run reconcile again in a minute"
)


async def indexed_versions(projector: Projector, progress: Progress) -> dict[str, int]:
    versions: dict[str, int] = {}
    async for hit in projector.index.scan(page=10000):
        versions[hit["_id"]] = hit["_version"]
        if len(versions) % 10000 == 0:
            progress("reading index", len(versions), None)
    return versions


async def reconcile(projector: Projector, *, repair: bool = True, progress: Progress = _quiet) -> dict[str, Any]:
    started = time.perf_counter()
    indexed = await indexed_versions(projector, progress)
    progress("reading mongodb", 0, None)
    expected = await projector.reader.expected_versions()
    drift = compare(expected, indexed)
    report = drift.report()
    report["needs_reindex"] = bool(drift.ahead)
    if repair and drift.total:
        report.update(await repair_drift(projector, drift, expected, indexed, progress))
    else:
        report["repaired"] = 0
    progress("finished", drift.expected, drift.expected)  # a finished job shows this, not its last phase
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


async def repair_drift(
    projector: Projector, drift: Drift, expected: dict[str, int], indexed: dict[str, int], progress: Progress
) -> dict[str, Any]:
    """Write what is missing or stale, remove what is extra, and leave what is ahead (``AHEAD``) for reindex.

    ``repaired`` counts only what this pass wrote or removed; every write the index refused is named."""
    await projector.remove(drift.extra)
    unrepaired = Unrepaired()
    for image_id in drift.ahead:
        unrepaired.add(image_id, AHEAD.format(held=indexed[image_id], expected=expected[image_id]))
    todo = drift.missing + drift.stale
    refusals = Refusals()
    outcome: dict[str, str] = {}
    for start in range(0, len(todo), BATCH):
        outcome |= await refusals.tolerate(projector.project(todo[start : start + BATCH]))
        progress("repairing", min(start + BATCH, len(todo)), len(todo))
    refused_as_stale = [image_id for image_id, result in outcome.items() if result == "stale"]
    written_meanwhile = await _explain_stale(projector, refused_as_stale, expected, unrepaired)
    return {
        "repaired": len(drift.extra) + sum(result != "stale" for result in outcome.values()),
        "written_meanwhile": written_meanwhile,
        **unrepaired.report(),
        **refusals.report(),
    }


async def _explain_stale(projector: Projector, ids: list[str], expected: dict[str, int], unrepaired: Unrepaired) -> int:
    """Sort the writes the index refused for the version it holds: a document an event wrote meanwhile (at
    MongoDB's version or a later one: no drift left) or the tombstone of a deletion (``TOMBSTONE``).
    Returns how many were written meanwhile."""
    held = await projector.index.versions(ids)
    meanwhile = 0
    for image_id in ids:
        version = held.get(image_id)
        if version is None:
            unrepaired.add(image_id, TOMBSTONE)
        elif version >= expected[image_id]:
            meanwhile += 1
        else:
            unrepaired.add(image_id, f"still at version {version} below MongoDB's {expected[image_id]}; run reconcile again")
    return meanwhile


async def reindex(projector: Projector, *, progress: Progress = _quiet) -> dict[str, Any]:
    """Runs under the maintenance job lock (``jobs.JobRegistry``): no other rebuild builds meanwhile, so the
    indices earlier ones left behind (``ImageIndex.left_behind``) are dropped first."""
    started = time.perf_counter()
    index = projector.index
    leftovers = await index.left_behind()
    await index.drop(leftovers)
    leftovers += await index.drop_retired()
    total = await projector.reader.count()
    target = await index.create_build_index()
    written = 0
    refusals = Refusals()
    try:
        async for states in projector.reader.stream(BATCH):
            await refusals.tolerate(projector.write(states, target=target))
            written += len(states)
            progress("indexing", written, max(total, written))
        await index.finish_build(target)
    except BaseException:
        await _drop_failed_build(index, target)
        raise
    previous = await index.switch_alias(target)
    # Not dropped yet: a paging session's snapshot (point in time) reads it until its last page.
    kept_until = await index.retire(previous)
    catch_up = await reconcile(projector, progress=progress)
    progress("finished", written, written)
    return {
        "index": target,
        "indexed": written - refusals.count,
        "replaced": previous,
        "replaced_kept_until": kept_until.isoformat() if kept_until else None,
        "left_behind_dropped": leftovers,
        "caught_up": catch_up["repaired"],
        **refusals.report(),
        "seconds": round(time.perf_counter() - started, 3),
    }


class RetiredSweeper(LoopDriven):
    """Drops the indices reindex retired once their keep-alive has passed and no snapshot reads them, in
    every process of the service (at start too, so a retirement outlives a restart); ``drop_retired``
    needs no job lock."""

    def __init__(self, index: ImageIndex) -> None:
        self._loop = PollingLoop("retired-indices", self._pass, poll_seconds=min(index.keep_alive_span.total_seconds(), SWEEP_SECONDS_MAX))
        self.index = index

    async def _pass(self) -> bool:
        if dropped := await self.index.drop_retired():
            log.info("dropped the retired indices %s: keep-alive passed, no snapshot open on them", dropped)
        return False


async def _drop_failed_build(index: ImageIndex, target: str) -> None:
    """Drop a failed rebuild's index if Elasticsearch answers; if it does not (the outage that failed the
    rebuild, often), the next reindex drops it, and the job reports the failure that stopped it."""
    try:
        await index.drop([target])
    except Exception:  # noqa: BLE001 - the build's own failure is the one to report
        log.warning("could not drop the failed build index %s; the next reindex drops it", target, exc_info=True)
