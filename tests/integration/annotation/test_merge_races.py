"""Writes prepared before a label merge and committed after it end on the label that survived.

A tester merged a label while 40 clients edited its annotations: 40 of 40 stayed on the merged label for
good, under its old name in the summaries and in search. The edit had read the annotation before the merge
and wrote its whole state back, old label included; a merge changes no version, so the version check
passed. A create that resolved the name before the merge can do the same. These tests make each
interleaving happen in that order on purpose (prepare, merge, commit), with a drain that runs when told.
"""

from __future__ import annotations

import uuid

import pytest

from services.annotation import service
from services.annotation.adapters.store import ANNOTATIONS
from services.annotation.domain.geometry import check_all
from services.annotation.domain.model import now_ms
from shared.outbox import OUTBOX
from shared.readmodels import ANNOTATION_SUMMARIES
from tests.integration.annotation.conftest import add_image, service_layer

pytestmark = pytest.mark.integration


async def _labels(deps) -> tuple[dict, dict]:
    source, _ = await deps.labels.ensure(f"automobile {uuid.uuid4().hex[:6]}", "admin")
    target, _ = await deps.labels.ensure(f"car {uuid.uuid4().hex[:6]}", "admin")
    return source, target


def _box(image_id: str, label: str, x: int = 1) -> dict:
    return {"image_id": image_id, "type": "bbox", "label": label, "bbox": [x, 1, 4, 4]}


async def _on(db, annotation_ids: list[str]) -> set[str]:
    return {doc["label_id"] async for doc in db[ANNOTATIONS].find({"_id": {"$in": annotation_ids}}, {"label_id": 1})}


async def test_an_edit_read_before_a_merge_and_written_after_it_ends_on_the_surviving_label(undrained_db):
    deps = service_layer(undrained_db)
    image_id = await add_image(undrained_db, 200, 100)
    source, target = await _labels(deps)
    made = await service.create_many(deps, "admin", [_box(image_id, source["name"]), _box(image_id, source["name"], 5)])
    ids = [r["id"] for r in made]
    await deps.pending.drain_all()

    before = await service.current(deps, ids[0], 1)  # the edit reads the annotation ...
    await deps.labels.merge(source["_id"], target["_id"], "admin")  # ... the merge commits ...
    await service._write(deps, before, {"score": 0.5}, "editor", "updated")  # ... and the edit writes its state
    assert await _on(undrained_db, ids[:1]) == {source["_id"]}  # what the race left, for good, before

    await deps.pending.drain_all()
    assert await _on(undrained_db, ids) == {target["_id"]}
    summary = await undrained_db[ANNOTATION_SUMMARIES].find_one({"_id": image_id})
    assert summary["labels"] == {target["name"]: 2}
    edited = await undrained_db[ANNOTATIONS].find_one({"_id": ids[0]})
    assert (edited["version"], edited["score"]) == (2, 0.5)  # the edit itself is kept


@pytest.mark.parametrize("count", [1, 3], ids=["single-create", "bulk-create"])
async def test_a_create_that_resolved_the_label_before_a_merge_ends_on_the_surviving_label(undrained_db, count):
    deps = service_layer(undrained_db)
    image_id = await add_image(undrained_db, 200, 100)
    source, target = await _labels(deps)
    items = [_box(image_id, source["name"], x) for x in range(1, count + 1)]
    outcomes = list(enumerate(check_all([(i["type"], service._geometry_of(i), 100, 200) for i in items])))
    results = [{"index": n} for n in range(count)]
    # The label was resolved, the documents built ...
    docs, events = service._new_documents(deps, "admin", now_ms(), items, {source["name"]: source}, outcomes, results)
    await deps.labels.merge(source["_id"], target["_id"], "admin")  # ... the merge commits ...
    merged = {"type": "label.changed", "envelope.data.change": "merged", "envelope.data.label_id": source["_id"]}
    announced = await undrained_db[OUTBOX].count_documents(merged)
    await service._store(deps, docs, events)  # ... and the create is stored
    await deps.pending.drain_all()

    ids = [doc["_id"] for doc in docs]
    assert await _on(undrained_db, ids) == {target["_id"]}
    summary = await undrained_db[ANNOTATION_SUMMARIES].find_one({"_id": image_id})
    assert summary["labels"] == {target["name"]: count}
    if count > 1:  # a batch committed in its own transaction: the merge is announced again for search
        assert await undrained_db[OUTBOX].count_documents(merged) == announced + 1
