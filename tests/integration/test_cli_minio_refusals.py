"""MinIO refusing the configured bucket ends a ``corpus`` command with one line naming the bucket and MinIO's code.

Through ``main``, as the installed ``corpus`` runs: typer's own entry point used to turn minio's (frozen) S3Error
into an AttributeError and two tracebacks, exit 1, with the real reason in the middle.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def corpus(names: dict, bucket: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CORPUS_MONGO_DB": names["mongo_db"], "CORPUS_MINIO_BUCKET": bucket}
    return subprocess.run(
        [sys.executable, "-c", "from services.cli import main; main()", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", [["ingest", "orphans"], ["backup", "create", "--repo", "{tmp}"]], ids=["orphans", "backup"])
def test_a_missing_bucket_is_named_with_its_code_on_one_line(names, command, tmp_path):
    bucket = f"{names['minio_bucket']}-missing-{uuid.uuid4().hex[:8]}"
    done = corpus(names, bucket, *(arg.format(tmp=tmp_path / "repo") for arg in command))
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert f"bucket '{bucket}': NoSuchBucket" in done.stderr and "Traceback" not in said and "frozen" not in said, said


@pytest.mark.parametrize("bucket", ["My_Bucket", "ab"], ids=["capitals-and-underscore", "too-short"])
def test_a_bucket_name_s3_refuses_is_a_configuration_error_before_any_request(names, bucket):
    done = corpus(names, bucket, "ingest", "orphans")
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert bucket in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in said, said
