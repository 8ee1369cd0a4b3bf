"""A document Elasticsearch refuses for itself does not fail a whole reindex or repair: it is left out,
counted and named, and every other image is indexed."""

from __future__ import annotations

import uuid

from services.search import maintenance
from tests.integration.search.helpers import minimal_image as image


async def test_reindex_and_repair_leave_out_only_the_document_elasticsearch_refuses(projector, es):
    good = [uuid.uuid4().hex * 2 for _ in range(3)]
    bad = uuid.uuid4().hex * 2
    # A capture time that is no date (an odd EXIF string kept as it was): the date field refuses it.
    await projector.reader.images.insert_many([image(i) for i in good] + [image(bad, captured_at="the day before yesterday")])

    reported = []
    rebuilt = await maintenance.reindex(projector, progress=lambda *step: reported.append(step))
    assert reported[-1] == ("finished", 4, 4)  # what a finished job shows
    assert (rebuilt["indexed"], rebuilt["refused"]) == (3, 1)
    assert list(rebuilt["refused_examples"]) == [bad] and "date" in rebuilt["refused_examples"][bad]
    await es.indices.refresh(index=projector.index.alias)
    assert (await es.count(index=projector.index.alias))["count"] == 3

    await projector.reader.images.update_one({"_id": good[0]}, {"$set": {"version": 2, "tags": ["changed"]}})
    repaired = await maintenance.reconcile(projector)
    assert (repaired["missing"], repaired["stale"], repaired["repaired"], repaired["refused"]) == (1, 1, 1, 1)
    stored = await es.get(index=projector.index.alias, id=good[0])
    assert stored["_source"]["tags"] == ["changed"]


async def test_a_label_change_finds_images_by_a_name_past_the_keyword_limit(projector, es):
    from services.search.handlers import images_carrying
    from shared.readmodels import ANNOTATION_SUMMARIES

    huge = "ü" * 40_000  # an old label, stored before names were capped; its documents hold it clipped
    carrier = uuid.uuid4().hex * 2
    await projector.reader.images.insert_one(image(carrier))
    await projector.reader.db[ANNOTATION_SUMMARIES].insert_one({"_id": carrier, "version": 1, "count": 1, "labels": {huge: 1}})
    await projector.project([carrier])
    await es.indices.refresh(index=projector.index.alias)
    await projector.reader.db[ANNOTATION_SUMMARIES].delete_one({"_id": carrier})  # only the index still says so
    assert await images_carrying(projector.reader, projector.index, [huge]) == {carrier}
