"""Edits wait inside their annotation until a drain moves them: reads see them at once, a crashed
writer's changes are swept up by another replica, and nothing is moved twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.annotation import service
from services.annotation.adapters.store import ANNOTATIONS, HISTORY, ensure_indexes
from services.annotation.domain.model import AnnotationPatch
from shared.auth import Principal, Role
from shared.outbox import OUTBOX
from shared.readmodels import ANNOTATION_SUMMARIES
from tests.integration.annotation.conftest import add_image, service_layer

pytestmark = pytest.mark.integration

ADMIN = Principal("admin", "admin", Role.ADMIN)


async def test_a_crashed_writers_changes_are_readable_then_swept_by_another_replica(undrained_db):
    mongo_db = undrained_db
    await ensure_indexes(mongo_db)
    image_id = await add_image(mongo_db, 200, 100)
    writer = service_layer(mongo_db)
    [created] = await service.create_many(writer, "admin", [{"image_id": image_id, "type": "bbox", "label": "swept", "bbox": [1, 1, 5, 5]}])
    annotation_id = created["id"]
    await service.update(writer, ADMIN, annotation_id, AnnotationPatch(bbox=[2, 2, 6, 6]), 1)
    after_update = datetime.now(UTC)
    # History times are kept to the millisecond: the delete must fall in a later one than after_update,
    # or as_of(after_update) rightly answers the state at the end of that millisecond (deleted).
    await asyncio.sleep(0.002)
    await service.delete(writer, ADMIN, annotation_id, 2)

    # Nothing drained yet: the changes wait in the document, and every history read still sees them.
    doc = await mongo_db[ANNOTATIONS].find_one({"_id": annotation_id})
    assert doc["pending_n"] == 3 and [c["history"]["version"] for c in doc["pending"]] == [1, 2, 3]
    assert await mongo_db[HISTORY].count_documents({"annotation_id": annotation_id}) == 0
    history = await writer.annotations.history(annotation_id, 0, 100)
    assert [(h["version"], h["action"]) for h in history] == [(1, "created"), (2, "updated"), (3, "deleted")]
    assert (await writer.annotations.version(annotation_id, 2))["state"]["bbox"] == [2, 2, 6, 6]
    [then] = await writer.annotations.as_of(image_id, after_update)
    assert then["_id"] == annotation_id and then["bbox"] == [2, 2, 6, 6]
    assert await mongo_db[ANNOTATION_SUMMARIES].find_one({"_id": image_id}) is None
    # The API never shows the waiting changes as part of the annotation.
    assert "pending" not in await writer.annotations.get(annotation_id)

    # Another replica leaves fresh changes to their writer, then sweeps up what waited too long.
    other = service_layer(mongo_db).pending
    assert await other.sweep(older_than_seconds=60) == 0
    assert await other.sweep() == 1
    stored = await mongo_db[HISTORY].find({"annotation_id": annotation_id}).sort("version").to_list()
    assert [h["version"] for h in stored] == [1, 2, 3] and stored[1]["state"]["bbox"] == [2, 2, 6, 6]
    events = await mongo_db[OUTBOX].find({"envelope.data.annotation_id": annotation_id}).sort("created_at").to_list()
    assert [e["type"] for e in events] == ["annotation.created", "annotation.updated", "annotation.deleted"]
    summary = await mongo_db[ANNOTATION_SUMMARIES].find_one({"_id": image_id})
    assert summary["count"] == 0 and summary["labels"] == {}
    assert (await mongo_db[ANNOTATIONS].find_one({"_id": annotation_id}))["pending_n"] == 0

    # The crashed writer's own drain, coming back, finds nothing left to move: nothing twice.
    assert await writer.pending.drain([annotation_id]) == 0
    assert await mongo_db[HISTORY].count_documents({"annotation_id": annotation_id}) == 3
    assert await writer.annotations.history(annotation_id, 0, 100) == stored


async def test_a_killed_drain_process_is_restarted_and_nothing_it_missed_is_lost(annotation_client, image_id, mongo_db):
    import os
    import signal

    from services.annotation.deps import DEPS
    from tests.conftest import eventually

    drain = annotation_client.server.app[DEPS].pending
    killed = drain.pid
    assert killed is not None
    # Background work yields the cores to requests: the child runs niced below the service.
    from services.annotation.deps import ANNOTATION_SETTINGS

    niceness = annotation_client.server.app[ANNOTATION_SETTINGS].drain_niceness
    assert niceness > 0
    assert os.getpriority(os.PRIO_PROCESS, killed) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
    os.kill(killed, signal.SIGKILL)
    # Written while the drain process is down: its nudge reaches nobody.
    body = {"image_id": image_id, "type": "bbox", "label": "while down", "bbox": [1, 1, 5, 5]}
    created = await (await annotation_client.post("/v1/annotations", json=body)).json()

    async def restarted():
        return drain.pid not in (None, killed)

    await eventually(restarted)
    # The new process's sweep finds the change that waited (after its 5 s grace), and moves it.
    moved = await eventually(lambda: mongo_db[HISTORY].find_one({"_id": f"{created['id']}:1"}), timeout=30)
    assert moved["action"] == "created"
    assert await mongo_db[OUTBOX].count_documents({"envelope.data.annotation_id": created["id"]}) == 1
