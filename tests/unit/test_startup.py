"""A service whose store never answers gives up after its start-up patience: one JSON log line, exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_store_that_never_answers_ends_start_up_with_one_line_not_a_traceback():
    env = {
        **os.environ,
        "CORPUS_MINIO_ENDPOINT": "127.0.0.1:1",  # nothing listens on port 1
        "CORPUS_STARTUP_PATIENCE_SECONDS": "1",
        "CORPUS_PORT": "0",
    }
    env.pop("CORPUS_ADMIN_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "services.ingest"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # every line is a JSON record
    last = lines[-1]
    assert last["level"] == "CRITICAL" and last["message"].startswith("cannot start: MinIO did not answer within 1 s")
    assert "Traceback" not in done.stderr
