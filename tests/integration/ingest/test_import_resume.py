"""Killing the ingest process mid-import (SIGKILL) and starting it again loses nothing and duplicates nothing."""

import asyncio
import json
import os

import aiohttp
import pytest

from services.ingest.adapters.jobs import IMPORT_ITEMS
from shared.clients.mongo import database, mongo_client
from shared.outbox import OUTBOX
from shared.readmodels import IMAGES
from shared.settings import CorpusSettings
from tests.conftest import ADMIN, eventually
from tests.e2e.conftest import ServiceProcess
from tests.photos import require_coco
from tests.stack import remove_test_data


@pytest.fixture
async def resume_env(names, tmp_path):
    coco = require_coco()
    own = {
        **names,
        "mongo_db": f"{names['mongo_db']}_resume",
        "minio_bucket": f"{names['minio_bucket']}-resume",
        "amqp_exchange": f"{names['amqp_exchange']}-resume",
        "es_index_prefix": f"{names['es_index_prefix']}-resume",
    }
    env = {**os.environ, **{f"CORPUS_{k.upper()}": str(v) for k, v in own.items()}}
    env.update(
        CORPUS_IMPORT_ROOTS=json.dumps([str(coco)]),
        CORPUS_IMPORT_LEASE_SECONDS="3",
        CORPUS_IMPORT_CHUNK="8",
        CORPUS_IMPORT_POLL_SECONDS="0.2",
        CORPUS_CONCURRENCY="4",
    )
    yield env, CorpusSettings(**own), tmp_path
    await remove_test_data(CorpusSettings(**own))


async def test_sigkill_mid_import_then_restart_completes_without_loss_or_duplicates(resume_env):
    env, settings, logs = resume_env
    coco = require_coco()
    first = ServiceProcess("ingest", env, logs)
    await first.start()
    try:
        async with aiohttp.ClientSession(headers=ADMIN) as http:
            async with http.post(f"{first.url}/v1/imports", json={"kind": "coco", "path": str(coco), "dataset": "coco128-resume"}) as r:
                assert r.status == 202, await r.text()
                job_id = (await r.json())["id"]

            async def part_way():
                async with http.get(f"{first.url}/v1/imports/{job_id}") as r:
                    job = await r.json()
                return job if job["processed"] >= 16 else None

            job = await eventually(part_way, timeout=120, interval=0.05)
            first.proc.kill()  # SIGKILL: no clean-up, no lease release
            first.proc.wait()
            assert job["processed"] < 128, "the import finished before it could be interrupted"

            second = ServiceProcess("ingest", env, logs)
            await second.start()
            try:

                async def done():
                    async with http.get(f"{second.url}/v1/imports/{job_id}") as r:
                        current = await r.json()
                    return current if current["status"] == "done" else None

                job = await eventually(done, timeout=240, interval=0.3)
            finally:
                second.stop()
    finally:
        first.stop()

    assert job["total"] == job["processed"] == 128
    counts = job["counts"]
    assert counts["ingested"] + counts["near_duplicates"] == 128, counts
    assert counts["duplicates"] == 0 and counts["rejected"] == 0
    client = mongo_client(settings)
    try:
        db = database(client, settings)
        assert await db[IMAGES].count_documents({"origin.import_id": job_id}) == 128
        assert await db[IMPORT_ITEMS].count_documents({"import_id": job_id}) == 128
        staged = [e async for e in db[OUTBOX].find({"type": "annotations.imported", "envelope.data.import_id": job_id})]
        assert len(staged) == 128
        assert len({e["envelope"]["data"]["image_id"] for e in staged}) == 128
        assert sum(len(e["envelope"]["data"]["annotations"]) for e in staged) == 939
        ingested_events = await db[OUTBOX].count_documents({"type": "image.ingested"})
        assert ingested_events == 128
    finally:
        await client.close()
    await asyncio.sleep(0)
