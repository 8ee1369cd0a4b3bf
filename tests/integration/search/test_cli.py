"""``corpus search reindex|reconcile`` against the real stack, on the session's isolated names."""

from __future__ import annotations

import json

from pymongo import MongoClient
from typer.testing import CliRunner

from services.cli import app
from shared.readmodels import IMAGES
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
