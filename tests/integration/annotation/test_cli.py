"""``corpus users`` and ``corpus annotation`` against the running annotation app."""

from __future__ import annotations

import asyncio
import re

import pytest
from typer.testing import CliRunner

from services.cli import app
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.integration


async def corpus(client, *args: str) -> str:
    url = str(client.make_url("")).rstrip("/")
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--url", url, "--key", ADMIN_KEY])
    assert result.exit_code == 0, result.output
    return result.output


async def test_users_create_prints_a_working_key_once(annotation_client):
    output = await corpus(annotation_client, "users", "create", "cli reader", "--role", "reader")
    key = re.search(r"ick_[A-Za-z0-9_\-]+", output).group(0)
    me = await annotation_client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert (await me.json())["role"] == "reader"
    assert "cli reader" in await corpus(annotation_client, "users", "list")


async def test_history_and_revert_from_the_command_line(annotation_client, image_id):
    created = await annotation_client.post("/v1/annotations", json={"image_id": image_id, "type": "bbox", "label": "cli", "bbox": [1, 1, 2, 2]})
    annotation_id = (await created.json())["id"]
    await annotation_client.patch(f"/v1/annotations/{annotation_id}", json={"bbox": [2, 2, 3, 3]}, headers={"If-Match": '"1"'})
    assert "reverted" not in await corpus(annotation_client, "annotation", "history", annotation_id)
    output = await corpus(annotation_client, "annotation", "revert", annotation_id, "1")
    assert "version 3" in output
    doc = await (await annotation_client.get(f"/v1/annotations/{annotation_id}")).json()
    assert doc["bbox"] == [1, 1, 2, 2] and doc["version"] == 3
    assert "cli" in await corpus(annotation_client, "annotation", "labels")


async def test_a_refused_request_prints_each_error_the_service_gives(annotation_client):
    url = str(annotation_client.make_url("")).rstrip("/")
    args = ["users", "create", "x" * 201, "--role", "reader", "--url", url, "--key", ADMIN_KEY]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    said = " ".join(result.output.split())
    assert result.exit_code == 1, said
    assert "422 Invalid request body" in said and "name: String should have at most 200 characters" in said, said


async def test_import_errors_lists_what_the_annotation_service_refused(annotation_client, mongo_db):
    import uuid

    from tests.integration.annotation.test_import_handler import refused_import

    import_id = f"job-{uuid.uuid4().hex[:8]}"
    images = await refused_import(mongo_db, import_id, f"cli-refused-{uuid.uuid4().hex[:6]}")
    output = await corpus(annotation_client, "import", "errors", import_id)
    assert "3 annotation(s)" in output and "outside_image" in output
    assert all(image_id[:12] in output for image_id in images)
