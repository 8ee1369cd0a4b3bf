"""Imports of what real exports write, through the job API on the real stack: COCO 2017's own layout,
a file twice in one dataset, a job's warnings past the hundred it keeps, and a resumed job's rejections."""

import asyncio
import re

import pytest
from typer.testing import CliRunner

from services.cli import app
from tests.conftest import ADMIN_KEY
from tests.integration.ingest.test_imports import run_import
from tests.photos import skimage_photo, unique_png
from tests.unit.ingest.datasets import write_yolo


@pytest.fixture
async def importer(own_names, make_ingest, tmp_path):
    return await make_ingest(**own_names, import_roots=[tmp_path], consume_submissions=False, import_poll_seconds=0.2)


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
