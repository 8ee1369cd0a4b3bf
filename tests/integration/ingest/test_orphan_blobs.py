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


async def test_the_service_sweeps_orphans_on_its_schedule_one_replica_a_round(own_names, make_ingest, own_db):
    from services.ingest.config import IngestSettings
    from services.ingest.deps import IMPORT_WORKER
    from services.ingest.orphans import LEASES, SWEEP, OrphanSweeper
    from shared.clients.blobs import BlobStore
    from tests.conftest import eventually

    store = BlobStore(IngestSettings(**own_names))
    await store.ensure_bucket()
    lost = hashlib.sha256(b"left by a crash between blob and document").hexdigest()
    await store.put(original_key(lost), b"bytes", "application/octet-stream")
    foreign = "originals/zz/not-ours.txt"
    await store.put(foreign, b"someone else's", "text/plain")

    # Two replicas; the first sweep comes one interval after start, and one replica takes each round.
    schedule = {"orphan_sweep_seconds": 1.0, "orphan_grace_seconds": 0, "consume_submissions": False}
    replicas = [await make_ingest(**own_names, **schedule) for _ in range(2)]
    owners = {client.server.app[IMPORT_WORKER].owner for client in replicas}
    assert await store.exists(original_key(lost))  # not at start

    lease = await eventually(lambda: own_db[LEASES].find_one({"_id": SWEEP, "last_report": {"$exists": True}}), timeout=30)
    assert lease["owner"] in owners
    assert lease["last_report"]["removed"] == 1 and lease["last_report"]["unrecognised"] == 1
    assert not await store.exists(original_key(lost))
    assert await store.exists(foreign)

    # The lease: of two replicas whose timers fire together, exactly one sweeps the round.
    for client in replicas:
        await client.close()  # their own timers stop
    await own_db[LEASES].delete_many({})
    a, b = (OrphanSweeper(store, own_db, interval=60, grace=timedelta(0), owner=name) for name in ("a", "b"))
    assert sorted(await asyncio.gather(a._claim(), b._claim())) == [False, True]
    assert not await a._claim() and not await b._claim()  # held for the rest of the round
    await store.close()
