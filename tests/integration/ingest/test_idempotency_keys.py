"""Idempotency-Key: leases (a running request keeps its key, a dead process's key is taken over) and
fingerprints (a repeat must ask for the same thing; a key reused for another request is refused).

A request that claims a key renews a lease on it while it runs. When its
process dies (SIGKILL, a lost machine) nothing renews the lease; once it runs
out, a repeat of the request runs instead of being refused with 409 until the
entry expires a day later. What a killed process leaves behind is exactly an
entry with ``status: None`` and a lease in the past, so the HTTP tests write
that entry and send the repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta

import pytest

from shared.web.idempotency import IDEMPOTENCY, IdempotencyStore
from services.ingest.adapters.repository import IMAGES, REJECTIONS
from shared.events import utcnow
from tests.integration.ingest.test_batch_upload import batch_form
from tests.photos import skimage_photo, unique_png
from tests.uploads import image_form

pytestmark = pytest.mark.integration


async def test_the_lease_is_renewed_while_the_request_runs_and_taken_over_after(mongo_db):
    running = IdempotencyStore(mongo_db, ttl_seconds=3600, lease_seconds=1.0)
    repeat = IdempotencyStore(mongo_db, ttl_seconds=3600, lease_seconds=1.0)
    key = f"lease-{uuid.uuid4().hex}"
    assert await running.claim(key) is None
    async with running.leased(key):
        await asyncio.sleep(3.0)  # three leases long: only the renewals keep the key
        held = await repeat.claim(key)
        assert held is not None and held.status is None and held.locked_until > utcnow()
    # The block ended with no answer, as a killed process ends: nothing renews the lease now.
    await asyncio.sleep(1.5)
    assert await repeat.claim(key) is None  # taken over
    entry = await mongo_db[IDEMPOTENCY].find_one({"_id": key})
    assert entry["takeovers"] == 1 and entry["status"] is None and entry["locked_until"] > utcnow()
    again = await running.claim(key)  # the new owner holds it now
    assert again is not None and again.status is None
    await repeat.complete(key, 200, {"body": {"ok": True}, "headers": {}})
    done = await running.claim(key)
    assert done.status == 200 and done.body["body"] == {"ok": True}
    assert "locked_until" not in await mongo_db[IDEMPOTENCY].find_one({"_id": key})


async def _scope(ingest_client, mongo_db) -> str:
    """The ``<user>|batch|`` prefix this client's keys are stored under (read back, not assumed)."""
    key = f"probe-{uuid.uuid4().hex}"
    form = batch_form([("probe.txt", b"not an image")])
    response = await ingest_client.post("/v1/images:batch", data=form, headers={"Idempotency-Key": key})
    assert response.status == 200, await response.text()
    entry = await mongo_db[IDEMPOTENCY].find_one({"_id": {"$regex": f"\\|batch\\|{key}$"}})
    return entry["_id"][: -len(key)]


async def test_a_repeat_runs_the_request_a_killed_process_left_unanswered(ingest_client, mongo_db):
    key = f"killed-{uuid.uuid4().hex}"
    now = utcnow()
    scoped = await _scope(ingest_client, mongo_db) + key
    await mongo_db[IDEMPOTENCY].insert_one(  # what a process killed mid-request leaves: no answer, a lapsed lease
        {"_id": scoped, "status": None, "created_at": now - timedelta(minutes=2), "locked_until": now - timedelta(minutes=1),
         "expires_at": now + timedelta(hours=23)}
    )
    data = unique_png(skimage_photo("coffee.png"))
    response = await ingest_client.post("/v1/images:batch", data=batch_form([("coffee.png", data)]), headers={"Idempotency-Key": key})
    assert response.status == 200, await response.text()
    [item] = (await response.json())["items"]
    sha = hashlib.sha256(data).hexdigest()
    assert item["status"] == 201 and item["id"] == sha
    assert await mongo_db[IMAGES].count_documents({"_id": sha}) == 1
    entry = await mongo_db[IDEMPOTENCY].find_one({"_id": scoped})
    assert entry["status"] == 200 and entry["takeovers"] == 1
    replay = await ingest_client.post("/v1/images:batch", data=batch_form([("coffee.png", data)]), headers={"Idempotency-Key": key})
    assert replay.headers.get("Idempotent-Replayed") == "true" and (await replay.json())["items"][0]["status"] == 201


async def test_a_repeat_while_the_request_still_runs_is_told_when_to_retry(ingest_client, mongo_db):
    key = f"running-{uuid.uuid4().hex}"
    now = utcnow()
    scoped = await _scope(ingest_client, mongo_db) + key
    await mongo_db[IDEMPOTENCY].insert_one(  # a live request: its lease runs for 20 s more
        {"_id": scoped, "status": None, "created_at": now, "locked_until": now + timedelta(seconds=20),
         "expires_at": now + timedelta(hours=24)}
    )
    data = unique_png(skimage_photo("coffee.png"))
    response = await ingest_client.post("/v1/images:batch", data=batch_form([("coffee.png", data)]), headers={"Idempotency-Key": key})
    assert response.status == 409
    problem = await response.json()
    assert problem["type"].endswith("idempotency-in-progress") and key in problem["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 20
    assert await mongo_db[IMAGES].count_documents({"_id": hashlib.sha256(data).hexdigest()}) == 0  # it did not run


async def test_a_key_reused_for_other_files_or_fields_is_refused_and_nothing_of_it_is_stored(ingest_client, mongo_db):
    key = f"reuse-{uuid.uuid4().hex}"
    first, other = unique_png(skimage_photo("coffee.png")), unique_png(skimage_photo("coffee.png"))
    headers = {"Idempotency-Key": key}
    answered = await ingest_client.post("/v1/images:batch", data=batch_form([("a.png", first)], tags="one"), headers=headers)
    assert answered.status == 200 and (await answered.json())["items"][0]["status"] == 201
    # The same request again: aiohttp draws a new multipart boundary, and the key still replays.
    same = await ingest_client.post("/v1/images:batch", data=batch_form([("a.png", first)], tags="one"), headers=headers)
    assert same.status == 200 and same.headers.get("Idempotent-Replayed") == "true"
    for form in (
        batch_form([("a.png", other)], tags="one"),  # other bytes under the same name
        batch_form([("a.png", first)], tags="two"),  # other fields
        batch_form([("b.png", first)], tags="one"),  # another filename
        batch_form([("a.png", first), ("a.png", other)], tags="one"),  # one file more
    ):
        refused = await ingest_client.post("/v1/images:batch", data=form, headers=headers)
        assert refused.status == 422, await refused.text()
        problem = await refused.json()
        assert problem["type"].endswith("idempotency-key-reused") and key in problem["detail"]
    assert await mongo_db[IMAGES].count_documents({"_id": hashlib.sha256(other).hexdigest()}) == 0
    assert await mongo_db[IMAGES].count_documents({"_id": hashlib.sha256(first).hexdigest(), "tags": "two"}) == 0
    single = {"Idempotency-Key": f"{key}-single"}
    assert (await ingest_client.post("/v1/images", data=image_form(first, "a.png"), headers=single)).status == 200  # stored above
    replay = await ingest_client.post("/v1/images", data=image_form(first, "a.png"), headers=single)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert (await ingest_client.post("/v1/images", data=image_form(other, "a.png"), headers=single)).status == 422


async def test_a_json_repeat_matches_whatever_its_spacing_and_key_order(ingest_client, mongo_db):
    key = f"fetch-{uuid.uuid4().hex}"
    url = f"http://127.0.0.1:9/{key}.jpg"  # loopback: refused by the address guard, an answer all the same
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    first = await ingest_client.post("/v1/images:fetch", data=f'{{"urls": ["{url}"], "tags": ["x"]}}', headers=headers)
    assert first.status == 200 and (await first.json())["items"][0]["reason"] == "blocked_address"
    again = await ingest_client.post("/v1/images:fetch", data=f'{{ "tags":["x"],"urls":["{url}"] }}', headers=headers)
    assert again.status == 200 and again.headers.get("Idempotent-Replayed") == "true"
    other = await ingest_client.post("/v1/images:fetch", data=f'{{"urls": ["{url}?2"], "tags": ["x"]}}', headers=headers)
    assert other.status == 422 and (await other.json())["type"].endswith("idempotency-key-reused")
    assert await mongo_db[REJECTIONS].count_documents({"source": f"{url}?2"}) == 0  # the refused repeat fetched nothing

