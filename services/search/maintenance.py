"""``reindex`` and ``reconcile``: the mirror rebuilt from, and checked against, MongoDB.

- reindex: a fresh index of the current mapping, filled from MongoDB with the
  same projection the events use, then the alias moves to it in one atomic
  ``update_aliases`` call (searches answer from the old index until then), the
  old index is dropped, and a reconcile pass catches the events that landed in
  the old index during the build.
- reconcile: the index's ids and versions first, then MongoDB's (in that
  order, so an image ingested in between shows as missing, never as extra),
  compared; missing and stale images re-projected, extra ones deleted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from services.search.adapters.index import BulkWriteError, IndexBusy
from services.search.domain.drift import compare
from services.search.projection import Projector

# (phase, done, total or None)
Progress = Callable[[str, int, int | None], None]
# A job's work: given where to report progress, it returns its result.
Work = Callable[[Progress], Awaitable[dict[str, Any]]]
BATCH = 1000


def _quiet(phase: str, done: int, total: int | None) -> None:
    return None


class Refusals:
    """Documents Elasticsearch refuses for themselves (a value its mapping cannot take): a rebuild or a repair
    leaves them out, counts them and names a few, and goes on with the rest. A refusal for load is not one:
    it ends the job (``IndexBusy``), to be run again."""

    EXAMPLES = 20

    def __init__(self) -> None:
        self.count = 0
        self.examples: dict[str, str] = {}

    async def tolerate(self, write: Awaitable[object]) -> None:
        try:
            await write
        except IndexBusy:
            raise
        except BulkWriteError as error:
            self.count += len(error.refused)
            for doc_id, why in error.refused.items():
                if len(self.examples) < self.EXAMPLES:
                    self.examples[doc_id] = why[:300]

    def report(self) -> dict[str, Any]:
        return {"refused": self.count, "refused_examples": self.examples}


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
    drift = compare(await projector.reader.expected_versions(), indexed)
    report = drift.report()
    if repair and drift.total:
        # "ahead" documents cannot be overwritten with a lower external version: delete, then write.
        await projector.index.delete_many(drift.ahead + drift.extra)
        for image_id in drift.extra:
            if projector.similarity is not None:
                projector.similarity.remove(image_id)
        todo = drift.missing + drift.stale + drift.ahead
        refusals = Refusals()
        for start in range(0, len(todo), BATCH):
            await refusals.tolerate(projector.project(todo[start : start + BATCH]))
            progress("repairing", min(start + BATCH, len(todo)), len(todo))
        report["repaired"] = drift.total - refusals.count
        report.update(refusals.report())
    else:
        report["repaired"] = 0
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


async def reindex(projector: Projector, *, progress: Progress = _quiet) -> dict[str, Any]:
    started = time.perf_counter()
    index = projector.index
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
        await index.drop([target])
        raise
    previous = await index.switch_alias(target)
    await index.drop(previous)
    catch_up = await reconcile(projector, progress=progress)
    return {
        "index": target,
        "indexed": written - refusals.count,
        "replaced": previous,
        "caught_up": catch_up["repaired"],
        **refusals.report(),
        "seconds": round(time.perf_counter() - started, 3),
    }
