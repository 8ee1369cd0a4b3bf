"""Dataset imports through the job API: COCO (its annotations reach the annotation service), YOLO, VOC, folders."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import ADMIN
from services.ingest.adapters.repository import IMAGES
from shared.outbox import OUTBOX
from tests.conftest import eventually
from tests.photos import require_coco
from tests.unit.ingest.datasets import make_folder, make_voc, make_yolo


@pytest.fixture
async def importer(own_names, make_ingest, tmp_path):
    coco = require_coco()
    return await make_ingest(**own_names, import_roots=[coco, tmp_path], consume_submissions=False, import_poll_seconds=0.2)


@pytest.fixture
async def annotation_service(own_names):
    """The annotation service on the same stores and exchange, consuming what the imports send."""
    from services.annotation.app import init_app
    from services.annotation.config import AnnotationSettings

    client = TestClient(TestServer(await init_app(AnnotationSettings(**own_names))), headers=ADMIN)
    await client.start_server()
    yield client
    await client.close()


async def run_import(client, **body) -> dict:
    response = await client.post("/v1/imports", json=body)
    assert response.status == 202, await response.text()
    job = await response.json()
    assert response.headers["Location"] == f"/v1/imports/{job['id']}"
    return await finished(client, job["id"])


async def finished(client, job_id: str) -> dict:
    """The job once it has ended (done or failed)."""

    async def ended():
        current = await (await client.get(f"/v1/imports/{job_id}")).json()
        return current if current["status"] in ("done", "failed") else None

    return await eventually(ended, timeout=180, interval=0.3)


async def _annotation_events(mongo_db, import_id: str) -> list[dict]:
    cursor = mongo_db[OUTBOX].find({"type": "annotations.imported", "envelope.data.import_id": import_id})
    return [entry["envelope"]["data"] async for entry in cursor]


async def test_coco_import_stores_every_image_and_stages_its_annotations_once(importer, own_db, annotation_service):
    mongo_db = own_db
    coco = require_coco()
    job = await run_import(importer, kind="coco", path=str(coco / "annotations" / "instances.json"), dataset="coco128-it")
    assert job["status"] == "done", job
    counts = job["counts"]
    assert job["total"] == job["processed"] == 128
    assert counts["ingested"] + counts["near_duplicates"] + counts["duplicates"] == 128 and counts["rejected"] == 0
    assert counts["annotations_sent"] == 939 and counts["annotation_events"] == 128

    events = await _annotation_events(mongo_db, job["id"])
    assert len(events) == 128
    assert sum(len(e["annotations"]) for e in events) == 939
    types = [a["type"] for e in events for a in e["annotations"]]
    assert types.count("mask") == 10 and types.count("polygon") == 929
    first = next(e for e in events if e["annotations"])
    assert await mongo_db[IMAGES].find_one({"_id": first["image_id"], "origin.dataset": "coco128-it"})
    assert {c["name"] for c in first["categories"]} >= {a["label"] for a in first["annotations"]}

    # The annotation service turns them into annotations (or records why one was refused).
    async def arrived():
        made = await mongo_db["annotations"].count_documents({"dataset": "coco128-it"})
        refused = await mongo_db["annotation_import_errors"].count_documents({"dataset": "coco128-it"})
        return made + refused == 939 and made

    made = await eventually(arrived, timeout=180, interval=0.5)
    assert made > 900

    # Re-running the import creates no image and no annotation twice.
    images_before = await mongo_db[IMAGES].count_documents({})
    again = await run_import(importer, kind="coco", path=str(coco), dataset="coco128-it")
    assert again["counts"]["duplicates"] == 128 and again["counts"]["ingested"] == 0
    assert await mongo_db[IMAGES].count_documents({}) == images_before
    await eventually(lambda: _annotation_events(mongo_db, again["id"]))
    await eventually(arrived, timeout=60)
    assert await mongo_db["annotations"].count_documents({"dataset": "coco128-it"}) == made


async def test_yolo_import_sends_pixel_boxes(importer, tmp_path, own_db):
    mongo_db = own_db
    doc = make_yolo(tmp_path / "yolo", count=4)
    job = await run_import(importer, kind="yolo", path=str(tmp_path / "yolo"), dataset="yolo-it")
    assert job["status"] == "done" and job["total"] == 4, job
    events = {e["image_width"]: e for e in await _annotation_events(mongo_db, job["id"])}
    image = doc["images"][0]
    expected = sorted(a["bbox"] for a in doc["annotations"] if a["image_id"] == image["id"])
    matching = [e for e in await _annotation_events(mongo_db, job["id"]) if len(e["annotations"]) == len(expected)]
    assert events and matching
    got = [sorted(a["bbox"] for a in e["annotations"]) for e in matching]
    assert any(all(g == pytest.approx(x, abs=0.05) for g, x in zip(boxes, expected)) for boxes in got)


async def test_voc_and_folder_imports(importer, tmp_path, own_db):
    mongo_db = own_db
    make_voc(tmp_path / "voc", count=3)
    voc = await run_import(importer, kind="voc", path=str(tmp_path / "voc"))
    assert voc["status"] == "done" and voc["total"] == 3 and voc["dataset"] == "voc"
    assert all(a["type"] == "bbox" for e in await _annotation_events(mongo_db, voc["id"]) for a in e["annotations"])

    make_folder(tmp_path / "pets")
    (tmp_path / "pets" / "Cats" / "broken.jpg").write_bytes(b"not really a photo")
    folder = await run_import(importer, kind="folder", path=str(tmp_path / "pets"), tags=["Pets"])
    assert folder["total"] == 5 and folder["counts"]["rejected"] == 1
    events = await _annotation_events(mongo_db, folder["id"])
    assert sorted({a["label"] for e in events for a in e["annotations"]}) == ["cats", "traffic light"]
    rejected = await (await importer.get("/v1/rejections", params={"import_id": folder["id"]})).json()
    assert [r["filename"] for r in rejected["items"]] == ["broken.jpg"]
    assert rejected["items"][0]["reason"] == "not_an_image"


async def test_import_requests_are_checked(importer, ingest_client, tmp_path):
    outside = await importer.post("/v1/imports", json={"kind": "folder", "path": "/etc"})
    assert outside.status == 403 and "outside the import roots" in (await outside.json())["detail"]
    unknown = await importer.post("/v1/imports", json={"kind": "csv", "path": str(tmp_path)})
    assert unknown.status == 422
    missing = await importer.post("/v1/imports", json={"kind": "folder", "path": str(tmp_path / "nope")})
    assert missing.status == 422
    closed = await ingest_client.post("/v1/imports", json={"kind": "folder", "path": str(tmp_path)})
    assert closed.status == 403 and "CORPUS_IMPORT_ROOTS" in (await closed.json())["detail"]
    failed = await run_import(importer, kind="yolo", path=str(tmp_path))
    assert failed["status"] == "failed" and "classes.txt" in failed["error"]
    assert (await importer.get("/v1/imports/nope")).status == 404
