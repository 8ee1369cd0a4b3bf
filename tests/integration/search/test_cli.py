"""``corpus search reindex|reconcile`` against the real stack, on the session's isolated names."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pymongo import MongoClient
from typer.testing import CliRunner

from services.cli import app
from shared.readmodels import IMAGES
from shared.settings import CorpusSettings
from tests.integration.search.helpers import image_document
from tests.photos import skimage_photo


def _env(names: dict) -> dict[str, str]:
    return {f"CORPUS_{key.upper()}": str(value) for key, value in names.items()}


def _result_json(output: str) -> dict:
    return json.loads(output[output.index("{") : output.rindex("}") + 1])


def test_cli_reindex_then_reconcile_reports_zero_drift(names, base_settings):
    doc = image_document(skimage_photo("brick.png"), "brick.png", source="cli-test", tags=["brick"])
    with MongoClient(base_settings.mongo_url) as client:
        client[base_settings.mongo_db][IMAGES].replace_one({"_id": doc["_id"]}, doc, upsert=True)
    runner = CliRunner()
    reindexed = runner.invoke(app, ["search", "reindex"], env=_env(names))
    assert reindexed.exit_code == 0, reindexed.output
    result = _result_json(reindexed.output)
    assert result["index"].startswith(f"{names['es_index_prefix']}-images-v")
    assert result["indexed"] >= 1
    checked = runner.invoke(app, ["search", "reconcile", "--no-repair"], env=_env(names))
    assert checked.exit_code == 0, checked.output
    assert _result_json(checked.output)["drift"] == 0


def test_cli_jobs_take_the_maintenance_lock_the_services_jobs_take(own_names):
    """A reindex from the CLI ran beside one started over HTTP (or another CLI's): now it is a job like
    theirs, listed with them, and refused while one of them runs."""
    from services.search.jobs import JOBS, LOCK

    settings = CorpusSettings(**own_names)
    runner = CliRunner()
    with MongoClient(settings.mongo_url) as client:
        jobs = client[settings.mongo_db][JOBS]
        done = runner.invoke(app, ["search", "reindex"], env=_env(own_names))
        assert done.exit_code == 0, done.output
        [recorded] = jobs.find({"kind": "reindex"}).to_list()
        assert recorded["state"] == "succeeded" and recorded["owner"].startswith("cli-") and recorded["result"] == _result_json(done.output)

        now = datetime.now(UTC)
        running = {"_id": "http-job", "kind": "reconcile", "state": "running", "phase": "comparing", "done": 0, "total": None,
                   "started_at": now, "owner": "search-elsewhere", "lock": LOCK, "heartbeat_at": now}  # fmt: skip
        jobs.insert_one(running)
        refused = runner.invoke(app, ["search", "reconcile"], env=_env(own_names))
        assert refused.exit_code == 2, refused.output
        assert "reconcile job (http-job, run by search-elsewhere) is running" in " ".join(refused.output.split())
        assert jobs.count_documents({"kind": "reconcile"}) == 1  # nothing ran
