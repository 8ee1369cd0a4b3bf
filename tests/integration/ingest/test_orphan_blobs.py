"""Orphan blobs (no image document owns them) are counted, then removed; owned, young and foreign
objects are never touched."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.ingest.orphans import image_id_of, remove_orphan_blobs
from shared.clients.blobs import original_key, thumbnail_key
from tests.integration.annotation.conftest import add_image
from tests.photos import skimage_photo

pytestmark = pytest.mark.integration


def test_only_keys_ingest_writes_name_an_image():
    sha = hashlib.sha256(b"x").hexdigest()
    assert image_id_of(original_key(sha)) == sha and image_id_of(thumbnail_key(sha)) == sha
    assert image_id_of(f"standard/{sha[:2]}/{sha[2:4]}/{sha}.png") == sha
    assert image_id_of(f"originals/00/00/{sha}") is None  # folders do not match the name
    assert image_id_of("originals/ab/cd/not-a-sha") is None and image_id_of(f"exports/{sha}") is None


@pytest.fixture
async def own_bucket(names):
    """A bucket of this test's own, so its counts are exact: what ingest stored, and what it left."""
    from shared.clients.blobs import BlobStore
    from shared.settings import CorpusSettings

    settings = CorpusSettings(**{**names, "minio_bucket": f"{names['minio_bucket']}-orphans"})
    store = BlobStore(settings)
    await store.ensure_bucket()
    yield settings, store
    keys = [key for page in [p async for p in store.list_pages("")] for key, _ in page]
    await store.delete_many(keys)
    await asyncio.to_thread(store._client.remove_bucket, store.bucket)
    await store.close()


async def test_orphans_are_listed_then_removed_and_nothing_else(own_bucket, mongo_db):
    settings, store = own_bucket
    # An image document as ingest commits it (under a random id: the session's other tests upload the
    # sample photos, and a document for one of them here would turn their uploads into duplicates).
    owned = await add_image(mongo_db)
    await store.put(original_key(owned), skimage_photo("coffee.png"), "image/png")
    await store.put(thumbnail_key(owned), b"thumbnail", "image/jpeg")
    lost = hashlib.sha256(b"a blob whose document never committed").hexdigest()
    orphans = [original_key(lost), thumbnail_key(lost)]
    for key in orphans:
        await store.put(key, b"bytes", "application/octet-stream")
    foreign = "originals/zz/not-ours.txt"
    await store.put(foreign, b"left by someone else", "text/plain")

    young = await remove_orphan_blobs(store, mongo_db, grace=timedelta(hours=1), dry_run=False)
    assert (young.scanned, young.too_young, young.unrecognised, young.removed) == (5, 4, 1, 0)
    dry = await remove_orphan_blobs(store, mongo_db, grace=timedelta(0), dry_run=True)
    assert (dry.owned, dry.orphans, dry.removed, sorted(dry.examples)) == (2, 2, 0, sorted(orphans))
    assert all([await store.exists(key) for key in orphans])

    # The command line counts the same orphans (dry run, the default) against the same stores.
    env = {f"CORPUS_{k.upper()}": str(v) for k, v in settings.model_dump().items() if isinstance(v, str | int | float)}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["ingest", "orphans", "--older-than", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert orphans[0] in result.output and "nothing removed" in result.output

    done = await remove_orphan_blobs(store, mongo_db, grace=timedelta(0), dry_run=False)
    assert (done.orphans, done.removed, done.raced) == (2, 2, [])
    assert not any([await store.exists(key) for key in orphans])
    assert await store.exists(original_key(owned)) and await store.exists(thumbnail_key(owned))
    assert await store.exists(foreign)
    again = await remove_orphan_blobs(store, mongo_db, grace=timedelta(0), dry_run=False)
    assert (again.scanned, again.orphans) == (3, 0)
