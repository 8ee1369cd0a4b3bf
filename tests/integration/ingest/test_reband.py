"""After the near-duplicate radius changes, `corpus ingest reband` gives stored images the new bands,
and near-duplicates of images stored under the old radius are found again."""

from __future__ import annotations

import asyncio
import io
import logging

import aiohttp
from PIL import Image
from typer.testing import CliRunner

from services.cli import app as cli
from services.ingest.domain.hashes import bands
from services.ingest.rebanding import banded_otherwise, reband
from shared.readmodels import IMAGES
from tests.conftest import ADMIN_KEY
from tests.photos import skimage_photo


async def _upload(client, files: dict[str, bytes]) -> list[dict]:
    form = aiohttp.FormData()
    for name, data in files.items():
        form.add_field("files", data, filename=name)
    response = await client.post("/v1/images:batch", data=form)
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


def _jpeg(png: bytes, quality: int) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


async def test_images_stored_under_another_radius_are_rebanded_and_found_again(own_names, make_ingest, own_db, caplog):
    old = await make_ingest(**own_names, near_duplicate_radius=4, consume_submissions=False)
    astronaut = skimage_photo("astronaut.png")
    stored = await _upload(old, {"astronaut.png": astronaut, "coffee.png": skimage_photo("coffee.png")})
    assert [item["outcome"] for item in stored] == ["created", "created"]
    # An image stored before the radius was recorded with its bands counts as banded otherwise too.
    await own_db[IMAGES].update_one({"_id": stored[1]["id"]}, {"$unset": {"phash_bands_radius": ""}})
    assert await banded_otherwise(own_db, 4) == 1 and await banded_otherwise(own_db, 6) == 2

    # The service started with the new radius says what is stale and what to run.
    with caplog.at_level(logging.WARNING, logger="services.ingest.rebanding"):
        new = await make_ingest(**own_names, near_duplicate_radius=6, consume_submissions=False)
    assert "2 image(s) have pHash bands for another near-duplicate radius than 6" in caplog.text
    assert "corpus ingest reband" in caplog.text

    env = {"CORPUS_API_KEY": ADMIN_KEY, **{f"CORPUS_{k.upper()}": str(v) for k, v in own_names.items()}}
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["ingest", "reband", "--radius", "6"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 image(s) re-banded for near-duplicate radius 6" in " ".join(result.output.split())

    for doc in await own_db[IMAGES].find({}).to_list():
        assert doc["phash_bands_radius"] == 6 and doc["phash_bands"] == bands(doc["phash"], 6)
        assert len(doc["phash_bands"]) == 7
    assert await banded_otherwise(own_db, 6) == 0
    assert (await reband(own_db, 6)).rebanded == 0  # nothing left: a second pass does nothing

    # The same photo re-encoded (another file, a pHash a few bits away) is linked to the one stored before.
    [near] = await _upload(new, {"astronaut-q60.jpg": _jpeg(astronaut, 60)})
    assert near["outcome"] == "created" and near["near_duplicate_of"] == stored[0]["id"]
    assert (await own_db[IMAGES].find_one({"_id": near["id"]}))["phash_bands_radius"] == 6
