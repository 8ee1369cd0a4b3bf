"""Imports of what real exports write, through the job API on the real stack: COCO 2017's own layout,
a file twice in one dataset, a job's warnings past the hundred it keeps, and a resumed job's rejections."""

import asyncio
import json
import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.ingest.adapters.jobs import IMPORT_ITEMS, IMPORTS
from shared.events import utcnow
from tests.conftest import ADMIN_KEY
from tests.integration.ingest.test_imports import _rejections, finished, run_import
from tests.photos import skimage_photo, unique_png
from tests.unit.ingest.datasets import write_yolo


@pytest.fixture
async def importer(own_names, make_ingest, tmp_path):
    return await make_ingest(**own_names, import_roots=[tmp_path], consume_submissions=False, import_poll_seconds=0.2)


async def test_coco_2017_layout_is_found_and_a_missing_image_says_where_it_was_looked_for(importer, tmp_path):
    root = tmp_path / "coco2017"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "val2017" / "000000000139.png").write_bytes(unique_png(skimage_photo("coffee.png")))
    images = [
        {"id": 139, "file_name": "000000000139.png", "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg"},
        {"id": 285, "file_name": "000000000285.png", "coco_url": "http://images.cocodataset.org/val2017/000000000285.jpg"},
    ]
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps({"images": images, "annotations": [], "categories": []}))
    job = await run_import(importer, kind="coco", path=str(root / "annotations" / "instances_val2017.json"))
    assert job["status"] == "done" and job["counts"]["ingested"] == 1 and job["counts"]["rejected"] == 1, job
    [missing] = await _rejections(importer, job["id"])
    assert missing["reason"] == "unreadable" and missing["source"] == "images/000000000285.png"
    for folder in ("images", "annotations/images", "annotations", "val2017", "images/val2017"):
        assert str(root / folder / "000000000285.png") in missing["message"], missing["message"]


async def test_a_file_twice_in_one_import_is_ingested_once_and_a_duplicate_once(importer, tmp_path):
    photo = unique_png(skimage_photo("chelsea.png"))
    for folder in ("cats", "pets"):
        (tmp_path / "two" / folder).mkdir(parents=True)
        (tmp_path / "two" / folder / "chelsea.png").write_bytes(photo)
    job = await run_import(importer, kind="folder", path=str(tmp_path / "two"))
    assert job["status"] == "done" and job["counts"]["ingested"] == 1 and job["counts"]["duplicates"] == 1, job


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"CORPUS_API_KEY": ADMIN_KEY}, catch_exceptions=False)


async def test_a_job_keeps_its_first_hundred_warnings_and_counts_them_all(importer, tmp_path):
    write_yolo(tmp_path / "noisy", {"a": "\n".join(f"7 0.5 0.5 0.{n % 9 + 1} 0.2" for n in range(150))}, {"a.png": unique_png(skimage_photo("coffee.png"))})
    job = await run_import(importer, kind="yolo", path=str(tmp_path / "noisy"))
    assert job["status"] == "done", job
    assert len(job["warnings"]) == 100 and job["warnings_total"] == 150
    assert job["warnings"][99].startswith("labels/a.txt:100: class 7")

    url = str(importer.make_url("")).rstrip("/")
    shown = await asyncio.to_thread(_invoke, "import", "status", job["id"], "--url", url)
    assert shown.exit_code == 0, shown.output
    assert re.search(r"… and 140 more", shown.output), shown.output


async def test_a_resumed_import_refuses_again_into_the_same_rejection_record(importer, tmp_path, own_db):
    """A job killed after refusing an item but before recording it refuses the item again when it resumes:
    the same rejection (the same id), not a second one."""
    (tmp_path / "gone" / "cats").mkdir(parents=True)
    (tmp_path / "gone" / "cats" / "broken.png").write_bytes(b"not a photo at all")
    (tmp_path / "gone" / "cats" / "chelsea.png").write_bytes(unique_png(skimage_photo("chelsea.png")))
    job = await run_import(importer, kind="folder", path=str(tmp_path / "gone"))
    [first] = await _rejections(importer, job["id"])

    # As after a SIGKILL between the refusal and its item's record: nothing recorded, the lease run out.
    await own_db[IMPORT_ITEMS].delete_many({"import_id": job["id"]})
    unfinished = {"status": "running", "lease_owner": "ingest-killed", "lease_until": utcnow() - timedelta(seconds=1), "finished_at": None}
    await own_db[IMPORTS].update_one({"_id": job["id"]}, {"$set": unfinished})
    resumed = await finished(importer, job["id"])
    assert resumed["status"] == "done" and resumed["counts"]["rejected"] == 1, resumed
    assert [r["id"] for r in await _rejections(importer, job["id"])] == [first["id"]]
