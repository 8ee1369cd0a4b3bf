"""A service or store that does not answer ends a ``corpus`` command with one line and exit 3, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLOSED = "127.0.0.1:1"  # nothing listens on port 1


@pytest.mark.parametrize(
    "args, setting",
    [
        (["users", "list"], {"CORPUS_ANNOTATION_URL": f"http://{CLOSED}"}),
        (["import", "status", "abc"], {"CORPUS_INGEST_URL": f"http://{CLOSED}"}),
        (["bus", "status"], {"CORPUS_AMQP_URL": f"amqp://guest:guest@{CLOSED}/"}),
    ],
    ids=["annotation-http", "ingest-http", "rabbitmq"],
)
def test_an_unreachable_service_ends_the_command_with_one_line(args, setting):
    env = {**os.environ, "CORPUS_API_KEY": "ick_whatever", **setting}
    done = subprocess.run(
        [sys.executable, "-c", "from services.cli import main; main()", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr
    assert "cannot reach a service or store" in done.stderr and "Traceback" not in done.stderr + done.stdout
