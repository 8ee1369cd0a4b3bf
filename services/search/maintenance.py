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

from services.search.domain.drift import compare
from services.search.projection import Projector

# (phase, done, total or None)
Progress = Callable[[str, int, int | None], None]
# A job's work: given where to report progress, it returns its result.
Work = Callable[[Progress], Awaitable[dict[str, Any]]]
BATCH = 1000


def _quiet(phase: str, done: int, total: int | None) -> None:
    return None


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
        done = 0
        for start in range(0, len(todo), BATCH):
            await projector.project(todo[start : start + BATCH])
            done = min(start + BATCH, len(todo))
            progress("repairing", done, len(todo))
        report["repaired"] = drift.total
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
    try:
        async for states in projector.reader.stream(BATCH):
            await projector.write(states, target=target)
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
        "indexed": written,
        "replaced": previous,
        "caught_up": catch_up["repaired"],
        "seconds": round(time.perf_counter() - started, 3),
    }
