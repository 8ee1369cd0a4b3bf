"""A rename or merge moves the label's annotations in small batches after the label's own change commits.

In one transaction, a merge of 20,000 annotations under steady edits write-conflicted with the edits and the
drain until it gave up after 55 s (503). These tests merge and rename in batches of a few dozen: under edits
and creates running beside it, and stopped between two batches, as a process that died would leave it, then
finished by what the drain process runs (:func:`finish_stale_moves`).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from services.annotation import service
from services.annotation.adapters.label_moves import LabelMoves, finish_move, finish_stale_moves
from services.annotation.adapters.store import ANNOTATIONS, LABEL_MOVES
from services.annotation.domain.errors import VersionConflict
from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.handlers import handlers
from services.search.projection import Projector
from shared.events import Envelope, LabelChanged, utcnow
from shared.events.catalog import parse_data
from shared.outbox import OUTBOX, OutboxRelay
from shared.readmodels import ANNOTATION_SUMMARIES
from tests.conftest import eventually
from tests.integration.annotation.conftest import add_image, service_layer

pytestmark = pytest.mark.integration

BATCH = 40


@pytest.fixture
async def search(undrained_db, es, base_settings):
    """Search's projection of ``undrained_db`` into an index of its own."""
    index = ImageIndex(es, f"{base_settings.es_index_prefix}-moves-{uuid.uuid4().hex[:6]}")
    await index.ensure()
    yield Projector(ImageReader(undrained_db), index)
    for name in (await es.indices.get(index=f"{index.alias}-*")).body:
        await es.indices.delete(index=name)


async def _search_hears(db, search: Projector, label_id: str, heard: set[str]) -> dict[str, list[str]]:
    """Search handles the label's ``label.changed`` events it has not yet had, as they were staged; returns the
    labels each image then has in the index."""
    on_label_changed = handlers(search, None)[LabelChanged.event_type]
    async for entry in db[OUTBOX].find({"type": LabelChanged.event_type, "envelope.data.label_id": label_id}).sort("_id", 1):
        if entry["_id"] not in heard:
            heard.add(entry["_id"])
            await search.index.es.indices.refresh(index=search.index.alias)
            envelope = Envelope.model_validate(entry["envelope"])
            await on_label_changed(envelope, parse_data(envelope))
    image_ids = await db[ANNOTATION_SUMMARIES].distinct("_id")
    return {i: doc.get("labels") for i, doc in (await search.index.get_many(image_ids, ["labels"])).items()}


async def _labelled_annotations(db, deps, images: int, per_image: int) -> tuple[dict, dict, list[str], list[str]]:
    source, _ = await deps.labels.ensure(f"automobile {uuid.uuid4().hex[:6]}", "admin")
    target, _ = await deps.labels.ensure(f"car {uuid.uuid4().hex[:6]}", "admin")
    image_ids = [await add_image(db, 200, 100) for _ in range(images)]
    items = [_box(image_id, source["name"], x) for image_id in image_ids for x in range(1, per_image + 1)]
    made = await service.create_many(deps, "admin", items)
    await deps.pending.drain_all()
    return source, target, image_ids, [r["id"] for r in made]


def _box(image_id: str, label: str, x: int = 1) -> dict:
    return {"image_id": image_id, "type": "bbox", "label": label, "bbox": [x, 1, 4, 4]}


async def _label_counts(db) -> Counter:
    return Counter([doc["label_id"] async for doc in db[ANNOTATIONS].find({}, {"label_id": 1})])


async def _summaries_match_annotations(db, image_ids: list[str], name: str) -> None:
    """Every image's summary holds exactly its live annotations, all under ``name``."""
    live = Counter([doc["image_id"] async for doc in db[ANNOTATIONS].find({"deleted": False}, {"image_id": 1})])
    summaries = {doc["_id"]: doc async for doc in db[ANNOTATION_SUMMARIES].find({"_id": {"$in": image_ids}})}
    assert {i: summaries[i]["labels"] for i in image_ids} == {i: {name: live[i]} for i in image_ids}


async def _announced(db, label_id: str, change: str) -> int:
    return await db[OUTBOX].count_documents({"type": "label.changed", "envelope.data.change": change, "envelope.data.label_id": label_id})


async def test_a_merge_in_batches_under_steady_edits_and_creates_ends_with_every_annotation_on_the_survivor(undrained_db, search):
    deps = service_layer(undrained_db)
    source, target, image_ids, ids = await _labelled_annotations(undrained_db, deps, images=12, per_image=30)  # 9 batches
    await search.project(image_ids)
    merging, edits, created = True, Counter(), []

    async def edit() -> None:  # reads an annotation, then writes it back edited: its label as it was read
        while merging:
            annotation_id = random.choice(ids)
            before = await service.current(deps, annotation_id, None)
            try:
                await service._write(deps, before, {"score": random.random()}, "editor", "updated")
            except VersionConflict:
                continue
            edits[annotation_id] += 1

    async def create() -> None:  # under the merged label's name, resolved before or after the merge
        while merging:
            made = await service.create_many(deps, "admin", [_box(random.choice(image_ids), source["name"])])
            created.append(made[0]["id"])

    async def drain() -> None:  # the drain process: moves what the writers left pending, every few ms
        while merging:
            await deps.pending.drain_all()
            await asyncio.sleep(0.005)

    writers = [asyncio.create_task(work()) for work in (edit, edit, create, drain)]
    try:
        await deps.labels.merge(source["_id"], target["_id"], "admin", batch=BATCH)
    finally:
        merging = False
        await asyncio.gather(*writers)
    await deps.pending.drain_all()

    assert edits and created  # the writers did run beside the merge
    assert await _label_counts(undrained_db) == {target["_id"]: len(ids) + len(created)}
    await _summaries_match_annotations(undrained_db, image_ids, target["name"])
    versions = {doc["_id"]: doc["version"] async for doc in undrained_db[ANNOTATIONS].find({"_id": {"$in": ids}})}
    assert versions == {i: 1 + edits[i] for i in ids}  # no edit lost to a batch, none undone by one
    assert await undrained_db[LABEL_MOVES].count_documents({}) == 0
    # Announced when the label changed and again once the annotations had moved, for search to re-project them.
    assert await _announced(undrained_db, source["_id"], "merged") == 2
    assert await _search_hears(undrained_db, search, source["_id"], set()) == {i: [target["name"]] for i in image_ids}


async def test_a_merge_stopped_between_batches_is_finished_later_and_announced_once_more(undrained_db, search):
    deps = service_layer(undrained_db)
    source, target, image_ids, ids = await _labelled_annotations(undrained_db, deps, images=6, per_image=20)
    await search.project(image_ids)
    survivor, move = await deps.labels.merge_label(source["_id"], target["_id"], "admin")
    assert survivor["_id"] == target["_id"]
    assert not await finish_move(undrained_db, move, batch=BATCH, batches=2)  # the process dies after two batches
    assert await _label_counts(undrained_db) == {target["_id"]: 2 * BATCH, source["_id"]: len(ids) - 2 * BATCH}
    assert await _announced(undrained_db, source["_id"], "merged") == 1
    heard: set[str] = set()
    # The first announcement re-projects what had moved by then; images still to move keep the old name.
    halfway = await _search_hears(undrained_db, search, source["_id"], heard)
    summarised = {doc["_id"]: sorted(doc["labels"]) async for doc in undrained_db[ANNOTATION_SUMMARIES].find()}
    assert {i: sorted(labels) for i, labels in halfway.items()} == summarised
    assert {target["name"]} < {name for labels in halfway.values() for name in labels}

    assert await finish_stale_moves(undrained_db) == 0  # a record touched just now may belong to a live process
    assert await finish_stale_moves(undrained_db, older_than_seconds=0) == 1
    assert await _label_counts(undrained_db) == {target["_id"]: len(ids)}
    await _summaries_match_annotations(undrained_db, image_ids, target["name"])
    assert await undrained_db[LABEL_MOVES].count_documents({}) == 0
    assert await _announced(undrained_db, source["_id"], "merged") == 2
    assert await _search_hears(undrained_db, search, source["_id"], heard) == {i: [target["name"]] for i in image_ids}
    # A second finisher that read the record before it went stages nothing more.
    assert await finish_move(undrained_db, move, batch=BATCH)
    assert await _announced(undrained_db, source["_id"], "merged") == 2


async def test_a_rename_stopped_between_batches_resumes_after_the_last_image_it_summarised(undrained_db):
    deps = service_layer(undrained_db)
    label, _, image_ids, _ = await _labelled_annotations(undrained_db, deps, images=5, per_image=3)
    new_name = f"sedan {uuid.uuid4().hex[:6]}"
    _, move = await deps.labels.rename_label(label["_id"], new_name, "admin")
    assert not await finish_move(undrained_db, move, batch=2, batches=1)
    stored = await undrained_db[LABEL_MOVES].find_one({"_id": move["_id"]})
    first_two = sorted(image_ids)[:2]
    assert stored["after"] == first_two[-1]
    summaries = {doc["_id"]: list(doc["labels"]) async for doc in undrained_db[ANNOTATION_SUMMARIES].find({"_id": {"$in": image_ids}})}
    assert {i for i, names in summaries.items() if names == [new_name]} == set(first_two)

    assert await finish_stale_moves(undrained_db, older_than_seconds=0) == 1
    await _summaries_match_annotations(undrained_db, image_ids, new_name)
    assert await _announced(undrained_db, label["_id"], "renamed") == 2


async def test_the_drain_process_finishes_a_move_left_untouched(undrained_db):
    deps = service_layer(undrained_db)
    source, target, image_ids, ids = await _labelled_annotations(undrained_db, deps, images=3, per_image=20)
    _, move = await deps.labels.merge_label(source["_id"], target["_id"], "admin")
    # As a process that died a minute ago left it.
    await undrained_db[LABEL_MOVES].update_one({"_id": move["_id"]}, {"$set": {"touched_at": utcnow() - timedelta(minutes=1)}})
    moves = LabelMoves(undrained_db, OutboxRelay(undrained_db, None, poll_seconds=60), poll_seconds=0.1)
    moves.start()
    try:
        await eventually(lambda: _gone(undrained_db, move["_id"]))
    finally:
        await moves.stop()
    assert await _label_counts(undrained_db) == {target["_id"]: len(ids)}
    await _summaries_match_annotations(undrained_db, image_ids, target["name"])


async def _gone(db, move_id: str) -> bool:
    return await db[LABEL_MOVES].count_documents({"_id": move_id}) == 0
