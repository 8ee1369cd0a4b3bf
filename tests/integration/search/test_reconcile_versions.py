"""Reconcile against Elasticsearch's versioning rules: it counts as repaired only what it wrote, and never
takes an image out of search to repair it. A document indexed at a newer version than MongoDB's cannot be
written back to the lower one (no version type lowers a version; a delete leaves a tombstone that refuses
it for index.gc_deletes), so it stays as it is and the report says to reindex; the write refused by a
fresh deletion's tombstone is named, not counted as repaired."""

from __future__ import annotations

import uuid

from services.search import maintenance
from services.search.domain.documents import external_version, project
from services.search.projection import Projector
from tests.integration.search.helpers import minimal_image as image


async def indexed_image(projector: Projector, es) -> str:
    image_id = uuid.uuid4().hex * 2
    await projector.reader.images.insert_one(image(image_id))
    await projector.project([image_id])
    await es.indices.refresh(index=projector.index.alias)
    return image_id


async def test_an_image_indexed_ahead_of_mongodb_stays_searchable_and_is_reported_for_reindex(projector, es):
    image_id = await indexed_image(projector, es)
    # The repro: the index holds a version MongoDB never reached (written directly, as after a restore).
    document, version = project(image(image_id, tags=["from the future"]), None)
    await es.index(index=projector.index.alias, id=image_id, document=document, version=version + 1000, version_type="external", refresh=True)

    report = await maintenance.reconcile(projector)
    assert (report["ahead"], report["repaired"], report["unrepaired"], report["needs_reindex"]) == (1, 0, 1, True)
    assert "run reindex" in report["unrepaired_examples"][image_id]
    await es.indices.refresh(index=projector.index.alias)
    again = await maintenance.reconcile(projector, repair=False)
    assert (again["missing"], again["ahead"]) == (0, 1)  # still in the index, never dropped

    rebuilt = await maintenance.reindex(projector)
    assert rebuilt["indexed"] == 1
    stored = await es.get(index=projector.index.alias, id=image_id)
    assert stored["_version"] == external_version(1, 0) and stored["_source"]["tags"] == ["maintenance"]
    assert (await maintenance.reconcile(projector, repair=False))["drift"] == 0


async def test_a_write_refused_by_a_fresh_deletions_tombstone_is_named_not_counted_as_repaired(projector, es):
    image_id = await indexed_image(projector, es)
    # Deleted behind the service's back: the deletion's version (one above the image's) is kept for 60 s.
    await es.delete(index=projector.index.alias, id=image_id, refresh=True)

    report = await maintenance.reconcile(projector)
    assert (report["missing"], report["repaired"], report["unrepaired"]) == (1, 0, 1)
    assert "index.gc_deletes" in report["unrepaired_examples"][image_id]
