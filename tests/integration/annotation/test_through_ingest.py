"""The done-criterion end to end: the COCO sample imported through ingest's dataset import shows
its 939 annotations and 71 used categories here, with normalised labels."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.annotation.adapters.store import ANNOTATIONS, IMPORT_ERRORS, LABELS
from shared.naming import normalize_name
from tests.conftest import ADMIN, eventually
from tests.photos import require_coco

pytestmark = pytest.mark.integration

DATASET = "coco128-through-ingest"


@pytest.fixture
async def importer(names):
    from services.ingest.app import init_app
    from services.ingest.config import IngestSettings

    settings = IngestSettings(**names, import_roots=[require_coco()], consume_submissions=False, import_poll_seconds=0.2)
    client = TestClient(TestServer(await init_app(settings)), headers=ADMIN)
    await client.start_server()
    yield client
    await client.close()


async def test_coco_through_ingest_arrives_complete(importer, annotation_client, mongo_db):
    coco = require_coco()
    started = await importer.post("/v1/imports", json={"kind": "coco", "path": str(coco / "annotations" / "instances.json"), "dataset": DATASET})
    assert started.status == 202, await started.text()
    job_url = f"/v1/imports/{(await started.json())['id']}"

    async def finished():
        job = await (await importer.get(job_url)).json()
        return job if job["status"] in ("done", "failed") else None

    job = await eventually(finished, timeout=300, interval=0.5)
    assert job["status"] == "done", job

    async def all_annotations():
        return await mongo_db[ANNOTATIONS].count_documents({"dataset": DATASET}) == 939

    await eventually(all_annotations, timeout=300, interval=0.5)
    assert await mongo_db[IMPORT_ERRORS].count_documents({"dataset": DATASET}) == 0
    used = await mongo_db[ANNOTATIONS].distinct("label_id", {"dataset": DATASET})
    names = {label["name"] for label in await mongo_db[LABELS].find({"_id": {"$in": used}}).to_list()}
    data = json.loads((coco / "annotations" / "instances.json").read_text())
    categories = {c["id"]: c["name"] for c in data["categories"]}
    assert names == {normalize_name(categories[a["category_id"]]) for a in data["annotations"]}
    assert len(names) == 71
    listing = await annotation_client.get(f"/v1/images/{(await mongo_db[ANNOTATIONS].find_one({'dataset': DATASET}))['image_id']}/annotations")
    assert listing.status == 200 and (await listing.json())["items"]
