"""Dataset imports through the job API: COCO (its annotations reach the annotation service), YOLO, VOC, folders."""

import hashlib
import json
import os
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import ADMIN
from services.ingest.adapters.jobs import IMPORTS, JobRepository
from services.ingest.adapters.repository import IMAGES
from shared.events import utcnow
from shared.outbox import OUTBOX
from tests.conftest import eventually
from tests.photos import require_coco, skimage_photo, unique_png
from tests.unit.ingest.datasets import make_folder, make_voc, make_yolo, voc_object, write_coco, write_voc, write_yolo


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


async def test_yolo_boxes_on_the_edge_arrive_and_one_far_outside_is_a_warning(importer, tmp_path, own_db, annotation_service):
    """coffee.png is 600 × 400. The first box ends on the right edge (rounded apart, it ended at 600.01), the
    second 0.09 px past it (an exporter that does not clip); the third 60 px past it."""
    lines = ["0 0.591163 0.5 0.817675 0.5", "0 0.7500750 0.5 0.50015 0.5", "0 0.75 0.5 0.7 0.5"]
    write_yolo(tmp_path / "yolo", {"a": "\n".join(lines)}, {"a.png": unique_png(skimage_photo("coffee.png"))})
    job = await run_import(importer, kind="yolo", path=str(tmp_path / "yolo"), dataset="edge-it")
    assert job["status"] == "done", job
    assert job["warnings"] == [
        "labels/a.txt:3: reaches 60.00 px outside the 600×400 image (more than the 1 px moved onto the edge); "
        "sent as it is, which the annotation service refuses"
    ]
    [event] = await _annotation_events(own_db, job["id"])
    assert [a["bbox"][0] + a["bbox"][2] for a in event["annotations"]][:2] == [600.0, 600.0]

    async def arrived():
        made = await own_db["annotations"].count_documents({"dataset": "edge-it"})
        refused = await own_db["annotation_import_errors"].find({"dataset": "edge-it"}).to_list()
        return (made, refused) if made + len(refused) == 3 else None

    made, refused = await eventually(arrived, timeout=60, interval=0.3)
    assert made == 2 and len(refused) == 1 and "outside" in json.dumps(refused[0], default=str)


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

    # The list of imports pages with a cursor and filters; a filter it does not know is refused, not ignored.
    first = await (await importer.get("/v1/imports", params={"limit": "1"})).json()
    second = await (await importer.get("/v1/imports", params={"limit": "1", "cursor": first["next"]})).json()
    assert [j["id"] for j in first["items"] + second["items"]] == [folder["id"], voc["id"]]
    only_voc = await (await importer.get("/v1/imports", params={"kind": "voc", "status": "done"})).json()
    assert [j["id"] for j in only_voc["items"]] == [voc["id"]] and only_voc["next"] is None
    for params, slug in (
        ({"staus": "done"}, "unknown-parameter"), ({"status": "finished"}, "invalid-parameter"), ({"cursor": "x"}, "bad-cursor"),
    ):
        refused = await importer.get("/v1/imports", params=params)
        assert refused.status == 400 and (await refused.json())["type"].endswith(f"/{slug}"), params
    typo = await importer.get("/v1/rejections", params={"import": folder["id"]})
    assert typo.status == 400 and "import_id" in (await typo.json())["detail"]  # the parameters are named


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


async def _rejections(client, import_id: str) -> list[dict]:
    return (await (await client.get("/v1/rejections", params={"import_id": import_id})).json())["items"]


async def test_files_outside_the_dataset_are_refused_unread_and_the_rest_is_imported(importer, tmp_path, tmp_path_factory, own_db):
    """A link in a folder, a COCO file_name with ../ or an absolute path, a VOC filename with ../: each
    names a file outside every import root. None is read; each is a rejection saying why."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # not under any import root
    secret = unique_png(skimage_photo("camera.png"))
    (elsewhere / "secret.png").write_bytes(secret)
    own = unique_png(skimage_photo("coffee.png"))

    (tmp_path / "pets" / "cats").mkdir(parents=True)
    (tmp_path / "pets" / "cats" / "own.png").write_bytes(own)
    (tmp_path / "pets" / "cats" / "evil.png").symlink_to(elsewhere / "secret.png")
    folder = await run_import(importer, kind="folder", path=str(tmp_path / "pets"))

    climbing = os.path.relpath(elsewhere / "secret.png", tmp_path / "coco" / "images")
    images = [{"id": 1, "file_name": "own.png"}, {"id": 2, "file_name": climbing}, {"id": 3, "file_name": str(elsewhere / "secret.png")}]
    write_coco(tmp_path / "coco", {"images": images, "annotations": [], "categories": []}, {"own.png": own})
    coco = await run_import(importer, kind="coco", path=str(tmp_path / "coco"))

    climbing = os.path.relpath(elsewhere / "secret.png", tmp_path / "voc" / "JPEGImages")
    write_voc(tmp_path / "voc", {"own": ("own.png", voc_object("cat", (1, 1, 5, 5))), "evil": (climbing, "")}, {"own.png": own})
    voc = await run_import(importer, kind="voc", path=str(tmp_path / "voc"))

    for job, outside in ((folder, 1), (coco, 2), (voc, 1)):
        assert job["status"] == "done", job
        assert job["counts"]["rejected"] == outside and job["total"] == outside + 1, job
        rejected = await _rejections(importer, job["id"])
        assert [r["reason"] for r in rejected] == ["outside_dataset"] * outside
        assert all("outside the dataset" in r["message"] and r["filename"] in ("evil.png", "secret.png") for r in rejected)
    assert await own_db[IMAGES].find_one({"_id": hashlib.sha256(secret).hexdigest()}) is None
    assert await own_db[IMAGES].find_one({"_id": hashlib.sha256(own).hexdigest()})


async def test_malformed_dataset_files_fail_the_job_saying_which_file_and_field(importer, tmp_path):
    photo = {"a.png": skimage_photo("coffee.png")}
    write_coco(tmp_path / "coco", {"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1}]}, photo)
    write_yolo(tmp_path / "yolo", {}, photo)
    (tmp_path / "yolo" / "classes.txt").unlink()
    (tmp_path / "yolo" / "data.yaml").write_text("names: [a, b\n  : : :\n")

    coco = await run_import(importer, kind="coco", path=str(tmp_path / "coco"))
    assert coco["status"] == "failed" and "instances.json: category #0 (id 1) has no 'name'" in coco["error"], coco
    yolo = await run_import(importer, kind="yolo", path=str(tmp_path / "yolo"))
    assert yolo["status"] == "failed" and "data.yaml is not valid YAML" in yolo["error"], yolo


async def test_a_bad_annotation_is_a_warning_and_the_image_keeps_its_good_ones(importer, tmp_path, own_db):
    """A bad or non-finite COCO bbox, YOLO line or VOC field, an undecodable YOLO label file: a warning each,
    and the images still arrive with every good annotation (the annotation service gets no NaN)."""
    photos = {"a.png": unique_png(skimage_photo("coffee.png")), "b.png": unique_png(skimage_photo("chelsea.png"))}
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": ["x", 1, 2, 3]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [float("nan"), 1, 2, 3]},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
    ]
    write_coco(tmp_path / "coco", {"images": [{"id": 1, "file_name": "a.png"}], "annotations": anns, "categories": [{"id": 1, "name": "cup"}]}, photos)
    write_yolo(tmp_path / "yolo", {"a": "0 nan inf 0.1 0.1\n0 0.5 0.5 0.2 0.2\n", "b": b"\xff\xfe\n"}, photos)
    objects = voc_object("cat", (1, 1, 5, 5), "<difficult>abc</difficult>") + voc_object("cat", (1, 1, "inf", 5)) + voc_object("cat", (2, 2, 8, 8))
    write_voc(tmp_path / "voc", {"a": ("a.png", objects)}, photos)

    for kind, warned, kept in (("coco", ["annotation 1 of a.png", "annotation 2 of a.png"], 1), ("yolo", ["labels/a.txt:1", "labels/b.txt"], 1), ("voc", ["object 0", "object 1"], 1)):
        job = await run_import(importer, kind=kind, path=str(tmp_path / kind), dataset=f"bad-{kind}")
        assert job["status"] == "done" and job["counts"]["rejected"] == 0, job
        assert len(job["warnings"]) == len(warned) and all(w in got for w, got in zip(warned, job["warnings"])), job["warnings"]
        assert job["counts"]["annotations_sent"] == kept, job
        events = await _annotation_events(own_db, job["id"])
        boxes = [a["bbox"] for e in events for a in e["annotations"]]
        assert len(boxes) == kept and all(v == v for box in boxes for v in box)


async def test_a_job_stuck_on_a_malformed_dataset_fails_at_its_next_retry(importer, tmp_path, own_db):
    """Jobs left running by the old reader (a KeyError every lease, for ever) end at their next claim."""
    write_coco(tmp_path / "coco", {"images": [], "categories": [{"id": 1}]})
    fields = {"kind": "coco", "path": str(tmp_path / "coco"), "dataset": "stuck", "tags": [], "licence": None, "author": None, "created_by": None}
    job = await JobRepository(own_db).create({"_id": "stuck-job", **fields})
    expired = {"status": "running", "lease_owner": "ingest-gone", "lease_until": utcnow() - timedelta(seconds=1)}
    await own_db[IMPORTS].update_one({"_id": job["_id"]}, {"$set": expired})
    ended = await finished(importer, job["_id"])
    assert ended["status"] == "failed" and "has no 'name'" in ended["error"], ended


async def test_an_unforeseen_reader_error_fails_the_job_instead_of_retrying_for_ever(importer, tmp_path, monkeypatch):
    def broken(kind, path, name):
        raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")

    monkeypatch.setattr("services.ingest.importer.read_dataset", broken)
    make_folder(tmp_path / "pets", per_class=1)
    job = await run_import(importer, kind="folder", path=str(tmp_path / "pets"))
    assert job["status"] == "failed" and job["error"].startswith("The folder dataset could not be read: RecursionError: maximum"), job


@pytest.mark.parametrize(
    ("path", "said"),
    [("{root}/\u0000x", "NUL character"), ("{root}/" + "a" * 5000, "File name too long"), ("~nonexistentuser-corpus/x", "home directory")],
)
async def test_paths_the_system_cannot_take_are_422_problems(importer, tmp_path, path, said):
    response = await importer.post("/v1/imports", json={"kind": "folder", "path": path.format(root=tmp_path)})
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["type"].endswith("/import-path") and said in problem["detail"] and len(problem["detail"]) < 300
