"""Bookkeeping records expire: a submission's record after ``submission_retention_days``, an ended import's
per-file records after ``import_items_retention_days`` (the job keeps its counts). MongoDB's TTL monitor
removes them (every second in the test session: ``ttl_monitor_every_second``)."""

import uuid
from datetime import timedelta

from services.ingest.adapters.jobs import IMPORT_ITEMS, IMPORTS, JobRepository
from services.ingest.config import IngestSettings
from services.ingest.deps import INGEST_SETTINGS
from services.ingest.handlers import SUBMISSIONS
from shared.bus import Bus
from shared.events import Envelope, ImageSubmitted, utcnow
from tests.conftest import eventually
from tests.photos import skimage_photo, unique_png
from tests.stack import remove_exchanges


def _close(a, b) -> bool:
    return abs(a - b) < timedelta(milliseconds=2)


def _pets(root):
    """An ImageNet-style folder of three real photos."""
    for name, photo in (("cat", "chelsea.png"), ("cup", "coffee.png"), ("rocket", "rocket.jpg")):
        (root / "pets" / name).mkdir(parents=True)
        (root / "pets" / name / f"{uuid.uuid4().hex[:8]}.png").write_bytes(unique_png(skimage_photo(photo)))
    return root / "pets"


async def _import(client, path) -> dict:
    response = await client.post("/v1/imports", json={"kind": "folder", "path": str(path)})
    assert response.status == 202, await response.text()
    job_id = (await response.json())["id"]

    async def ended():
        job = await (await client.get(f"/v1/imports/{job_id}")).json()
        return job if job["status"] in ("done", "failed") else None

    return await eventually(ended, timeout=60, interval=0.2)


async def test_an_ended_imports_items_are_dated_to_expire_after_the_retention(make_ingest, tmp_path, mongo_db):
    client = await make_ingest(import_roots=[tmp_path], consume_submissions=False, import_poll_seconds=0.2, import_items_retention_days=3)
    job = await _import(client, _pets(tmp_path))
    assert job["status"] == "done" and job["processed"] == 3, job
    stored = await mongo_db[IMPORTS].find_one({"_id": job["id"]})
    expected = stored["finished_at"] + timedelta(days=3)
    items = await mongo_db[IMPORT_ITEMS].find({"import_id": job["id"]}).to_list()
    assert len(items) == 3 and all(_close(item["expires_at"], expected) for item in items), items
    assert _close(stored["items_expire_at"], expected)


async def test_an_ended_imports_items_go_and_its_counts_stay(make_ingest, tmp_path, mongo_db):
    client = await make_ingest(import_roots=[tmp_path], consume_submissions=False, import_poll_seconds=0.2, import_items_retention_days=0)
    job = await _import(client, _pets(tmp_path))
    assert job["status"] == "done", job

    async def gone():
        return await mongo_db[IMPORT_ITEMS].count_documents({"import_id": job["id"]}) == 0

    await eventually(gone, timeout=90)  # the first pass may come a minute after the session's start
    later = await (await client.get(f"/v1/imports/{job['id']}")).json()
    assert later["processed"] == 3 and later["counts"] == job["counts"] and sum(job["counts"][k] for k in ("ingested", "duplicates", "near_duplicates")) == 3


async def test_items_of_jobs_ended_before_there_was_a_retention_get_one_at_start(own_db):
    mongo_db = own_db  # jobs of its own: they point at no real folder
    jobs = JobRepository(mongo_db, items_retention_days=2)
    fields = {"kind": "folder", "path": "/nowhere", "dataset": "old", "tags": [], "licence": None, "author": None, "created_by": None}
    ended_at = utcnow() - timedelta(days=1)
    old, running = f"old-{uuid.uuid4().hex[:8]}", f"running-{uuid.uuid4().hex[:8]}"
    for job_id in (old, running):
        await jobs.create({"_id": job_id, **fields})
        for index in range(2):
            await jobs.record_item(job_id, index, {"outcome": "ingested", "annotations": 0, "events": 0})
    await mongo_db[IMPORTS].update_one({"_id": old}, {"$set": {"status": "done", "finished_at": ended_at}})
    await mongo_db[IMPORTS].update_one({"_id": running}, {"$set": {"status": "running"}})

    await jobs.ensure_indexes()  # what the service does at start
    dated = await mongo_db[IMPORT_ITEMS].find({"import_id": old}).to_list()
    assert len(dated) == 2 and all(_close(item["expires_at"], ended_at + timedelta(days=2)) for item in dated)
    assert await mongo_db[IMPORT_ITEMS].count_documents({"import_id": running, "expires_at": {"$exists": True}}) == 0
    assert await jobs.expire_ended_items() == 0  # done once


async def test_a_submission_is_a_repeat_within_its_retention_and_taken_again_after_it(make_ingest, names, blob_store, mongo_db):
    exchange = f"{names['amqp_exchange']}-keep-{uuid.uuid4().hex[:6]}"
    await blob_store.put("upstream/kept.png", unique_png(skimage_photo("astronaut.png")), "image/png")
    client = await make_ingest(amqp_exchange=exchange, submission_retention_days=5 / (24 * 3600))  # five seconds
    assert client.server.app[INGEST_SETTINGS].submission_retention_days > 0
    upstream = Bus(IngestSettings(**{**names, "amqp_exchange": exchange}, service_name="upstream-test"))
    await upstream.connect()
    event_id = f"kept-{uuid.uuid4().hex}"
    envelope = Envelope.wrap(
        ImageSubmitted(source_event_id=event_id, s3={"bucket": blob_store.bucket, "key": "upstream/kept.png"}), producer="scraper-test"
    )

    async def settled():
        return await mongo_db[SUBMISSIONS].find_one({"_id": event_id, "status": {"$ne": "taking"}})

    try:
        await upstream.publish(envelope)
        first = await eventually(settled)
        assert first["status"] == "created" and _close(first["expires_at"], first["at"] + timedelta(seconds=5))
        await eventually(lambda: _absent(mongo_db, event_id), timeout=90)  # the first pass may come a minute after the session's start
        await upstream.publish(envelope)  # the same event after its record expired: taken again, found stored
        again = await eventually(settled)
        assert again["status"] == "duplicate" and again["image_id"] == first["image_id"] and again["at"] > first["at"]
    finally:
        await upstream.close()
        await remove_exchanges(IngestSettings(**names).amqp_url, [exchange])


async def _absent(mongo_db, event_id: str) -> bool:
    return await mongo_db[SUBMISSIONS].count_documents({"_id": event_id}) == 0


async def test_settled_submissions_from_before_the_retention_get_one_at_start_and_claims_none(make_ingest, mongo_db):
    at = utcnow() - timedelta(days=10)
    old, claim = f"old-{uuid.uuid4().hex}", f"claim-{uuid.uuid4().hex}"
    await mongo_db[SUBMISSIONS].insert_many([
        {"_id": old, "status": "created", "image_id": "0" * 64, "at": at},
        {"_id": claim, "status": "taking", "owner": "gone", "lease_until": utcnow()},
    ])
    await make_ingest(submission_retention_days=30)  # its start dates what has no expiry
    dated = await mongo_db[SUBMISSIONS].find_one({"_id": old})
    assert _close(dated["expires_at"], at + timedelta(days=30))
    assert "expires_at" not in await mongo_db[SUBMISSIONS].find_one({"_id": claim})
    await mongo_db[SUBMISSIONS].delete_many({"_id": {"$in": [old, claim]}})
