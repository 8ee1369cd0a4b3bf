"""Admin jobs live in MongoDB: any replica follows a job another one runs, one maintenance job runs at a time
across replicas, and a job whose process died is reported abandoned instead of holding the lock forever."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.search.jobs import JOBS, JobRegistry, JobRunning
from shared.clients.mongo import mongo_client
from shared.settings import CorpusSettings
from tests.conftest import eventually


@pytest.fixture
async def jobs_db(base_settings):
    client = mongo_client(base_settings)
    db = client[f"test_jobs_{uuid.uuid4().hex[:8]}"]
    yield db
    await client.drop_database(db.name)
    await client.close()


async def test_a_job_run_by_one_replica_is_followed_and_exclusive_on_every_replica(jobs_db):
    runner, other = JobRegistry(jobs_db, "replica-a"), JobRegistry(jobs_db, "replica-b")
    await runner.ensure_indexes()
    release = asyncio.Event()

    async def reindex(progress):
        progress("copying", 5, 10)
        await release.wait()
        return {"indexed": 10}

    job = await runner.start("reindex", reindex)
    # Another replica refuses a second maintenance job, of either kind, and names the running one.
    with pytest.raises(JobRunning) as refused:
        await other.start("reconcile", reindex)
    assert refused.value.job.id == job.id and refused.value.job.owner == "replica-a"

    # It sees the progress the runner reports (written with each heartbeat), then the outcome.
    seen = await eventually(lambda: _when(other.get(job.id), lambda j: j.done == 5), timeout=10)
    assert (seen.state, seen.phase, seen.total) == ("running", "copying", 10)
    release.set()
    done = await eventually(lambda: _when(other.get(job.id), lambda j: j.state != "running"), timeout=10)
    assert done.state == "succeeded" and done.result == {"indexed": 10} and done.finished_at is not None

    # The lock went with it: the next job starts.
    async def quick(progress):
        return {}

    assert (await other.start("reconcile", quick)).owner == "replica-b"
    await runner.close()
    await other.close()


async def test_a_job_whose_process_died_is_reported_abandoned_and_frees_the_lock(jobs_db):
    registry = JobRegistry(jobs_db, "replica-c")
    await registry.ensure_indexes()
    stale = datetime.now(UTC) - timedelta(minutes=5)
    await jobs_db[JOBS].insert_one({
        "_id": "dead-job", "kind": "reindex", "state": "running", "phase": "copying", "done": 3, "total": 9,
        "started_at": stale, "finished_at": None, "result": None, "error": None, "owner": "replica-gone",
        "lock": "maintenance", "heartbeat_at": stale,
    })  # fmt: skip
    dead = await registry.get("dead-job")
    assert dead.state == "failed" and "abandoned" in dead.error and "replica-gone" in dead.error

    async def work(progress):
        return {"ok": True}

    job = await registry.start("reindex", work)
    finished = await eventually(lambda: _when(registry.get(job.id), lambda j: j.state == "succeeded"), timeout=10)
    assert finished.result == {"ok": True}
    assert await registry.get("no-such-job") is None
    await registry.close()


async def test_the_http_api_answers_from_mongodb(search_client, names):
    """The search service's own registry: a job started over HTTP is read back from the store."""
    started = await search_client.post("/v1/admin/reconcile", params={"repair": "false"})
    assert started.status == 202
    job_id = (await started.json())["id"]
    body = await eventually(lambda: _json_when(search_client, f"/v1/admin/jobs/{job_id}"), timeout=60)
    assert body["state"] == "succeeded" and body["result"]["repaired"] == 0 and "seconds" in body["result"]
    from shared.clients.mongo import database

    client = mongo_client(CorpusSettings(**names))
    stored = await JobRegistry(database(client, CorpusSettings(**names))).get(job_id)
    await client.close()
    assert stored is not None and stored.state == "succeeded" and stored.result == body["result"]
    missing = await search_client.get("/v1/admin/jobs/nope")
    assert missing.status == 404 and "kept 30 days" in (await missing.json())["detail"]


async def test_a_finished_job_shows_its_final_phase_and_counts_not_its_last_progress(search_client):
    started = await search_client.post("/v1/admin/reconcile", params={"repair": "false"})
    job_id = (await started.json())["id"]
    body = await eventually(lambda: _json_when(search_client, f"/v1/admin/jobs/{job_id}"), timeout=60)
    assert body["state"] == "succeeded"
    assert (body["phase"], body["done"], body["total"]) == ("finished", body["result"]["expected"], body["result"]["expected"])


async def _when(read, accept):
    value = await read
    return value if value is not None and accept(value) else None


async def _json_when(client, path):
    body = await (await client.get(path)).json()
    return body if body.get("state") not in (None, "running") else None
