"""A service whose store never answers gives up after its start-up patience: one JSON line says why, exit 1.

(The stores' client libraries log their own retries before it, as JSON lines like every other.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "service, setting, store",
    [
        ("ingest", {"CORPUS_MINIO_ENDPOINT": "127.0.0.1:1"}, "MinIO"),  # nothing listens on port 1
        ("search", {"CORPUS_ES_URL": "http://127.0.0.1:1"}, "Elasticsearch"),  # it did not wait for it at all
        ("annotation", {"CORPUS_MONGO_URL": "mongodb://127.0.0.1:1/"}, "MongoDB"),
    ],
)
def test_a_store_that_never_answers_ends_start_up_with_one_line_not_a_traceback(service, setting, store):
    env = {**os.environ, **setting, "CORPUS_STARTUP_PATIENCE_SECONDS": "1", "CORPUS_PORT": "0"}
    env.pop("CORPUS_ADMIN_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # every line is a JSON record
    [critical] = [line for line in lines if line["level"] == "CRITICAL"]
    assert critical["message"].startswith(f"cannot start: {store} does not answer") and "exc_info" not in critical
    assert lines[-1] is critical  # nothing after it: no "unclosed client session"
