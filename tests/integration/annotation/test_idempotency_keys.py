"""Idempotency-Key on the annotation service's POSTs: a labelling tool that retries after a dropped
connection gets the first answer back instead of a second annotation or a wall of version conflicts."""

from __future__ import annotations

import uuid

import pytest

from services.annotation.adapters.store import ANNOTATIONS
from tests.integration.annotation.conftest import etag_of

pytestmark = pytest.mark.integration

BOX = {"type": "bbox", "label": "kite", "bbox": [10, 20, 30, 40]}


def keyed() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def test_a_retried_create_is_one_annotation_with_the_first_answer(annotation_client, image_id, mongo_db):
    headers = keyed()
    first = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX}, headers=headers)
    assert first.status == 201, await first.text()
    created = await first.json()
    # Another client library would space and order the JSON its own way.
    body = f'{{"bbox": [10, 20, 30, 40], "type": "bbox", "image_id": "{image_id}", "label": "kite"}}'
    retry = await annotation_client.post("/v1/annotations", data=body, headers={**headers, "Content-Type": "application/json"})
    assert retry.status == 201 and retry.headers.get("Idempotent-Replayed") == "true"
    assert (await retry.json())["id"] == created["id"] and etag_of(retry) == etag_of(first) == '"1"'
    assert retry.headers.get("Location") == first.headers.get("Location")
    assert await mongo_db[ANNOTATIONS].count_documents({"image_id": image_id}) == 1

    other = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "label": "kite string"}, headers=headers)
    assert other.status == 422 and (await other.json())["type"].endswith("idempotency-key-reused")
    assert await mongo_db[ANNOTATIONS].count_documents({"image_id": image_id}) == 1


async def test_a_retried_bulk_update_replays_instead_of_conflicting_with_itself(annotation_client, image_id):
    bulk = {"items": [{"image_id": image_id, **BOX}, {"image_id": image_id, **BOX, "bbox": [50, 50, 10, 10]}]}
    made = await (await annotation_client.post("/v1/annotations/bulk", json=bulk, headers=keyed())).json()
    assert made["created"] == 2
    ids = [r["id"] for r in made["results"]]
    update = {"items": [{"id": i, "version": 1, "patch": {"score": 0.5}} for i in ids]}
    headers = keyed()
    first = await annotation_client.post("/v1/annotations/bulk-update", json=update, headers=headers)
    assert (await first.json())["updated"] == 2
    without_key = await annotation_client.post("/v1/annotations/bulk-update", json=update)
    assert (await without_key.json())["failed"] == 2  # what a plain retry meets: its own writes, as version conflicts
    retry = await annotation_client.post("/v1/annotations/bulk-update", json=update, headers=headers)
    assert retry.headers.get("Idempotent-Replayed") == "true" and await retry.json() == await first.json()
    for annotation_id in ids:
        current = await annotation_client.get(f"/v1/annotations/{annotation_id}")
        assert (await current.json())["version"] == 2  # applied once


async def test_a_refused_create_is_replayed_as_refused(annotation_client, image_id, mongo_db):
    headers = keyed()
    outside = {"image_id": image_id, **BOX, "bbox": [600, 10, 50, 10]}
    first = await annotation_client.post("/v1/annotations", json=outside, headers=headers)
    again = await annotation_client.post("/v1/annotations", json=outside, headers=headers)
    assert first.status == again.status == 422
    assert again.headers.get("Idempotent-Replayed") == "true" and (await again.json())["reason"] == "outside_image"
    assert await mongo_db[ANNOTATIONS].count_documents({"image_id": image_id}) == 0


async def _answer_lost(mongo_db) -> None:
    """What a process that died (or lost MongoDB) between storing its work and recording its answer leaves:
    keys still running, whose leases have run out, so the next repeat takes them over and runs again."""
    from datetime import UTC, datetime, timedelta

    from shared.web.idempotency import IDEMPOTENCY

    result = await mongo_db[IDEMPOTENCY].update_many(
        {}, {"$set": {"status": None, "locked_until": datetime.now(UTC) - timedelta(seconds=1)}, "$unset": {"body": "", "fingerprint": ""}}
    )
    assert result.modified_count >= 1


async def test_a_create_run_again_after_its_answer_was_lost_finds_its_annotation_instead_of_a_second(annotation_client, image_id, mongo_db):
    """A tester stopped MongoDB under keyed creates: 8 of 3,213 were stored twice. The first run committed,
    recording its answer failed, the repeat took the key over and ran the create again with a new random id."""
    headers = keyed()
    first = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX}, headers=headers)
    assert first.status == 201, await first.text()
    bulk = {"items": [{"image_id": image_id, **BOX, "bbox": [1, 1, 5, 5]}, {"image_id": image_id, **BOX, "bbox": [600, 10, 50, 10]}, {"image_id": image_id, **BOX}]}
    bulk_headers = keyed()
    made = await (await annotation_client.post("/v1/annotations/bulk", json=bulk, headers=bulk_headers)).json()
    assert (made["created"], made["failed"]) == (2, 1)
    await _answer_lost(mongo_db)

    again = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX}, headers=headers)
    assert again.status == 201 and "Idempotent-Replayed" not in again.headers  # run again, not replayed
    assert (await again.json())["id"] == (await first.json())["id"]
    remade = await (await annotation_client.post("/v1/annotations/bulk", json=bulk, headers=bulk_headers)).json()
    assert [r.get("id") for r in remade["results"]] == [r.get("id") for r in made["results"]]
    assert (remade["created"], remade["failed"]) == (2, 1)
    assert await mongo_db[ANNOTATIONS].count_documents({"image_id": image_id}) == 3
    # Another caller's same key and body, or the same key with another body, is another request: new ids.
    other = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "score": 0.5}, headers=headers)
    assert other.status == 422  # the key is answered again, and reused for another body is refused as before
    fresh = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "score": 0.5}, headers=keyed())
    assert (await fresh.json())["id"] not in {(await first.json())["id"], *[r.get("id") for r in made["results"]]}
