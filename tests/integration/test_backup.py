"""Backups against the real stack: a corpus made through the services, snapshotted, checked, restored elsewhere.

The source corpus has stores of its own (database, bucket, index prefix,
exchange), so each snapshot holds exactly what these tests put there; the
restores go into a second set.
"""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from pathlib import Path

import bson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pymongo import MongoClient

from services.cli.snapshots.repository import Repository, RepositoryError
from services.cli.snapshots.restore import RestoreRefused, restore_snapshot
from services.cli.snapshots.take import take_snapshot
from services.cli.snapshots.verify import prune, verify_snapshot
from services.search import maintenance
from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.config import SearchSettings
from services.search.projection import Projector
from shared.clients.blobs import BlobStore, original_key, thumbnail_key
from shared.clients.elastic import elastic_client
from shared.clients.mongo import database, mongo_client
from shared.readmodels import IMAGES
from tests.conftest import ADMIN, eventually
from tests.integration.ingest.test_batch_upload import batch_form
from tests.photos import skimage_photo, unique_png
from tests.stack import remove_test_data

pytestmark = pytest.mark.integration

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png")


def _stores(names: dict, suffix: str) -> dict:
    return {
        **names,
        "mongo_db": f"{names['mongo_db']}_{suffix}",
        "es_index_prefix": f"{names['es_index_prefix']}-{suffix}",
        "minio_bucket": f"{names['minio_bucket']}-{suffix}",
        "amqp_exchange": f"{names['amqp_exchange']}-{suffix}",
    }


@pytest.fixture(scope="module")
def source(names) -> SearchSettings:
    return SearchSettings(**_stores(names, "bksrc"))


@pytest.fixture(scope="module")
async def corpus(source):
    """Ingest and annotation services on the source stores, with three photos, two annotations and an edit."""
    from services.annotation.app import init_app as annotation_app
    from services.annotation.config import AnnotationSettings
    from services.ingest.app import init_app as ingest_app
    from services.ingest.config import IngestSettings

    names = source.model_dump(include={"mongo_db", "es_index_prefix", "minio_bucket", "amqp_exchange", "admin_key", "outbox_poll_seconds"})
    ingest = TestClient(TestServer(await ingest_app(IngestSettings(**names))), headers=ADMIN)
    annotation = TestClient(TestServer(await annotation_app(AnnotationSettings(**names))), headers=ADMIN)
    await ingest.start_server()
    await annotation.start_server()
    try:
        uploaded = await ingest.post("/v1/images:batch", data=batch_form([(n, unique_png(skimage_photo(n))) for n in PHOTOS], tags="backup-test"))
        assert uploaded.status == 200, await uploaded.text()
        ids = [item["id"] for item in (await uploaded.json())["items"]]
        box = {"type": "bbox", "label": "cat", "bbox": [10, 20, 30, 40]}
        first = await annotation.post("/v1/annotations", json={"image_id": ids[2], **box})
        assert first.status == 201, await first.text()
        edited = await annotation.patch(
            f"/v1/annotations/{(await first.json())['id']}", json={"bbox": [11, 21, 31, 41]}, headers={"If-Match": first.headers["ETag"]}
        )
        assert edited.status == 200, await edited.text()
        second = await annotation.post("/v1/annotations", json={"image_id": ids[0], **box, "label": "person"})
        assert second.status == 201, await second.text()
        await eventually(lambda: _settled(source))
        yield {"ids": ids, "ingest": ingest}
    finally:
        await ingest.close()
        await annotation.close()
        await remove_test_data(source)


@pytest.fixture
def target(names):
    settings = SearchSettings(**_stores(names, f"bk{uuid.uuid4().hex[:6]}"))
    yield settings


@pytest.fixture
async def cleaned(target):
    yield target
    await remove_test_data(target)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repository:
    return Repository(tmp_path_factory.mktemp("backups"))


@pytest.fixture(scope="module")
async def snapshot(corpus, source, repo):
    return await take_snapshot(source, repo)


async def _settled(settings: SearchSettings) -> bool:
    """Every edit moved into history and every event published: nothing the services still write on their own."""
    client = mongo_client(settings)
    try:
        db = database(client, settings)
        return (
            await db["annotation_history"].count_documents({}) == 3
            and not await db["outbox"].count_documents({"status": "pending"})
            and not await db["annotations"].count_documents({"pending_n": {"$gt": 0}})
        )
    finally:
        await client.close()


def _dumped(repo: Repository, manifest) -> dict[str, list[dict]]:
    """The documents a snapshot holds, read back from its dump files."""
    return {
        c.name: sorted(bson.decode_all(gzip.decompress(repo.dump_path(manifest.id, manifest.database, c.name, ".bson.gz").read_bytes())), key=lambda d: str(d["_id"]))
        for c in manifest.collections
    }


def _documents(settings: SearchSettings) -> dict[str, list[dict]]:
    with MongoClient(settings.mongo_url) as client:
        db = client[settings.mongo_db]
        return {name: sorted(db[name].find(), key=lambda d: str(d["_id"])) for name in db.list_collection_names() if name != "backup_restores"}


def _index_names(settings: SearchSettings) -> dict[str, list[str]]:
    with MongoClient(settings.mongo_url) as client:
        db = client[settings.mongo_db]
        return {name: sorted(i["name"] for i in db[name].list_indexes()) for name in db.list_collection_names() if name != "backup_restores"}


async def _objects(settings: SearchSettings) -> dict[str, bytes]:
    blobs = BlobStore(settings)
    try:
        return {obj.key: await blobs.get(obj.key) async for page in blobs.inventory_pages() for obj in page}
    finally:
        await blobs.close()


async def test_a_restored_corpus_is_the_original_and_searchable(corpus, source, repo, snapshot, cleaned):
    assert snapshot.images == 3 and snapshot.missing_objects == 0
    assert snapshot.objects == 6 and snapshot.copied == 6  # an original and a thumbnail per image
    report = verify_snapshot(repo, snapshot.id)
    assert report.problem_count == 0, report.problems

    restored = await restore_snapshot(cleaned, repo)
    assert (restored.snapshot, restored.objects, restored.already_there_objects) == (snapshot.id, 6, 0)

    copy = _documents(cleaned)
    copy, source_now = _documents(cleaned), _documents(source)
    assert copy == _dumped(repo, snapshot)
    # What the services had written and acknowledged before the snapshot (an outbox event's "sent" mark,
    # written with w:1, may reach the snapshot's majority-committed point only after it).
    for name in (IMAGES, "annotations", "annotation_history", "annotation_summaries", "labels", "sources", "users"):
        assert copy[name] == source_now[name], name
    assert len(copy["annotation_history"]) == 3  # two creations and one edit: who, when, what changed
    assert _index_names(cleaned) == _index_names(source)
    assert await _objects(cleaned) == await _objects(source)
    for image_id in corpus["ids"]:
        assert original_key(image_id) in await _objects(cleaned) and thumbnail_key(image_id) in await _objects(cleaned)

    # Elasticsearch is rebuilt from the restored documents, then searchable as before.
    es, client = elastic_client(cleaned), mongo_client(cleaned)
    try:
        index = ImageIndex(es, cleaned.es_index_prefix, shards=1, replicas=0)
        await index.ensure()
        result = await maintenance.reindex(Projector(ImageReader(database(client, cleaned)), index))
        assert result["indexed"] == 3
    finally:
        await es.close()
        await client.close()
    from services.search.app import init_app as search_app

    search = TestClient(TestServer(await search_app(cleaned)), headers=ADMIN)
    await search.start_server()
    try:
        found = await (await search.get("/v1/search", params={"labels": "cat"})).json()
        assert [item["image_id"] for item in found["items"]] == [corpus["ids"][2]]
        everything = await (await search.get("/v1/search", params={"tags": "backup-test"})).json()
        assert everything["total"] == 3
    finally:
        await search.close()


async def test_each_snapshot_copies_only_what_is_new_and_prune_keeps_what_is_named(corpus, source, tmp_path):
    repo = Repository(tmp_path / "nightly")
    first = await take_snapshot(source, repo)
    assert (first.objects, first.copied) == (6, 6)
    again = await take_snapshot(source, repo)
    assert (again.objects, again.copied) == (6, 0)

    blobs = BlobStore(source)
    stray = uuid.uuid4().bytes * 100
    stray_key = f"imports/{uuid.uuid4().hex}/archive"
    try:
        await blobs.put(stray_key, stray, "application/zip")
        uploaded = await corpus["ingest"].post("/v1/images:batch", data=batch_form([("rocket.jpg", skimage_photo("rocket.jpg"))]))
        assert (await uploaded.json())["items"][0]["status"] == 201
        third = await take_snapshot(source, repo)
        assert (third.images, third.objects, third.copied) == (4, 9, 3)  # the new image's two blobs, the stray
        await blobs.delete(stray_key)
    finally:
        await blobs.close()
    fourth = await take_snapshot(source, repo)
    assert (fourth.objects, fourth.copied) == (8, 0)

    pruned = prune(repo, keep=1)
    assert pruned.kept == [fourth.id] and pruned.removed == [first.id, again.id, third.id]
    assert pruned.removed_blobs == 1 and pruned.freed_bytes == len(stray)  # only the stray was named by no kept snapshot
    assert repo.snapshot_ids() == [fourth.id]
    assert verify_snapshot(repo).problem_count == 0


async def test_a_snapshot_holds_one_point_in_time(corpus, source, repo):
    """Documents written while the dump runs are not in it, even in collections not yet read."""
    written = []

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase == "documents: labels" and not written:  # after the first collections were read
            with MongoClient(source.mongo_url) as client:
                client[source.mongo_db]["users"].insert_one({"_id": f"late-{uuid.uuid4().hex}", "role": "viewer"})
                written.append(client[source.mongo_db]["users"].count_documents({}))

    taken = await take_snapshot(source, repo, progress=progress)
    users = next(c for c in taken.collections if c.name == "users")
    assert written and users.documents == written[0] - 1


async def test_a_longer_snapshot_window_holds_for_the_dump_and_is_put_back(corpus, source, repo):
    window = "minSnapshotHistoryWindowInSeconds"
    seen = []

    def current() -> int:
        with MongoClient(source.mongo_url) as client:
            return client.admin.command({"getParameter": 1, window: 1})[window]

    before = current()
    await take_snapshot(source, repo, progress=lambda phase, done, total: seen.append(current()) if not seen else None, snapshot_window=before + 600)
    assert seen == [before + 600]
    assert current() == before


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_verify_names_each_damage_and_restore_refuses_a_damaged_snapshot(corpus, repo, snapshot, cleaned, tmp_path):
    damaged = Repository(tmp_path / "copy")
    shutil.copytree(repo.root, damaged.root)
    entries = {entry.key: entry for entry in damaged.objects(snapshot.id)}
    thumbnail = entries[thumbnail_key(corpus["ids"][1])]
    _damage(damaged.blob_path(thumbnail.sha256))
    damaged.blob_path(entries[original_key(corpus["ids"][0])].sha256).unlink()
    dump = damaged.dump_path(snapshot.id, snapshot.database, "annotations", ".bson.gz")
    dump.write_bytes(gzip.compress(gzip.decompress(dump.read_bytes())[:-7]))

    report = verify_snapshot(damaged, snapshot.id)
    assert report.problem_count == 3, report.problems  # one per damage
    text = "\n".join(report.problems)
    assert f"object {thumbnail.key}: its blob {thumbnail.sha256} is damaged" in text
    assert f"object {original_key(corpus['ids'][0])}: its blob" in text and "is missing" in text
    assert "collection annotations: its dump" in text
    assert f"object {original_key(corpus['ids'][0])}: an image document names it" not in text  # listed, only its blob is gone
    # A shallow check finds what needs no hashing: the missing blob, the wrong dump.
    shallow = verify_snapshot(damaged, snapshot.id, deep=False)
    assert any("is missing" in p for p in shallow.problems) and not any("is damaged" in p for p in shallow.problems)

    with pytest.raises(RepositoryError, match="the dump of annotations"):
        await restore_snapshot(cleaned, damaged, snapshot.id)
    assert _documents(cleaned) == {}  # refused before anything was written


async def test_restore_refuses_a_database_in_use_and_carries_on_after_an_interruption(source, repo, snapshot, cleaned):
    class Interrupted(Exception):
        pass

    def stop_midway(phase: str, done: int, total: int | None) -> None:
        if phase == "documents: labels":  # after annotations, history and images, before users
            raise Interrupted

    with pytest.raises(Interrupted):
        await restore_snapshot(cleaned, repo, snapshot.id, progress=stop_midway)
    partial = _documents(cleaned)
    assert partial["annotations"] and partial[IMAGES] and not partial.get("users")  # stopped midway

    again = await restore_snapshot(cleaned, repo, snapshot.id)  # the same snapshot: it carries on
    assert again.already_there_objects == 6 and again.objects == 0
    assert again.already_there_documents == sum(len(docs) for docs in partial.values())
    assert _documents(cleaned) == _dumped(repo, snapshot)

    # A finished restore, or any database with documents, is not written over without --replace.
    with pytest.raises(RestoreRefused, match="already holds documents"):
        await restore_snapshot(cleaned, repo, snapshot.id)
    replaced = await restore_snapshot(cleaned, repo, snapshot.id, replace=True)
    assert replaced.already_there_documents == 0 and replaced.documents == sum(c.documents for c in snapshot.collections)


def test_the_cli_runs_a_backup_round_trip(corpus, source, cleaned, tmp_path):
    from elasticsearch import Elasticsearch
    from typer.testing import CliRunner

    from services.cli import app

    def env(settings: SearchSettings) -> dict[str, str]:
        return {f"CORPUS_{k.upper()}": v for k, v in settings.model_dump(include={"mongo_db", "minio_bucket", "es_index_prefix"}).items()}

    def run(*args: str, settings: SearchSettings = source):
        result = CliRunner().invoke(app, ["backup", *args, "--repo", str(tmp_path / "r")], env=env(settings))
        return result, " ".join(result.output.split())

    with MongoClient(source.mongo_url) as client:
        images = client[source.mongo_db][IMAGES].count_documents({})  # the other tests of the module add some
    made, said = run("create")
    assert made.exit_code == 0, said
    assert f"({images} images), {2 * images} objects" in said and f"copied {2 * images} new objects" in said
    listed, said = run("list")
    assert listed.exit_code == 0 and Repository(tmp_path / "r").snapshot_ids()[0][:8] in said
    checked, said = run("verify")
    assert checked.exit_code == 0 and "is whole" in said, said
    restored, said = run("restore", settings=cleaned)
    assert restored.exit_code == 0 and "search index rebuilt" in said, said
    refused, said = run("restore", settings=cleaned)
    assert refused.exit_code == 2 and "already holds documents" in said
    missing, said = run("verify", "nope")
    assert missing.exit_code == 2 and "no finished snapshot 'nope'" in said
    with Elasticsearch(cleaned.es_url) as es:
        assert es.count(index=f"{cleaned.es_index_prefix}-images")["count"] == images


def test_a_repository_that_cannot_be_made_ends_the_command_with_its_reason(source, tmp_path):
    from typer.testing import CliRunner

    from services.cli import app

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {"CORPUS_MONGO_DB": source.mongo_db, "CORPUS_MINIO_BUCKET": source.minio_bucket}
    for command in ("create", "verify"):
        result = CliRunner().invoke(app, ["backup", command, "--repo", str(blocker / "repo")], env=env)
        said = " ".join(result.output.split())
        assert result.exit_code == 2, said  # a clean exit, not a traceback (which exits 1)
        assert "cannot be used" in said and "a-file" in said, said  # create cannot make it; verify finds a file where it would be


async def test_a_blob_cut_short_is_copied_again_by_the_next_snapshot(corpus, source, tmp_path):
    repo = Repository(tmp_path / "r")
    first = await take_snapshot(source, repo)
    entry = next(e for e in repo.objects(first.id) if e.size > 1000)
    with repo.blob_path(entry.sha256).open("r+b") as handle:
        handle.truncate(1000)
    second = await take_snapshot(source, repo)
    assert (second.copied, second.copied_bytes) == (1, entry.size)  # that one only: sizes, not hashes, are compared
    assert repo.blob_path(entry.sha256).stat().st_size == entry.size
    assert verify_snapshot(repo, second.id).problem_count == 0


def _copy(repo: Repository, tmp_path: Path) -> Repository:
    damaged = Repository(tmp_path / "copy")
    shutil.copytree(repo.root, damaged.root)
    return damaged


async def test_a_damaged_metadata_file_is_found_by_verify_and_refused_before_a_restore_writes(repo, snapshot, cleaned, tmp_path):
    damaged = _copy(repo, tmp_path)
    metadata = damaged.dump_path(snapshot.id, snapshot.database, "users", ".metadata.json")
    assert all(c.metadata_sha256 for c in snapshot.collections)
    metadata.write_text('{"options": {}, "indexes": []}')  # parses, but is not what the snapshot wrote
    report = verify_snapshot(damaged, snapshot.id, deep=False)
    assert report.problem_count == 1 and "users.metadata.json does not match the manifest's SHA-256" in report.problems[0], report.problems

    # A snapshot taken before manifests recorded the metadata's SHA-256: its metadata files are parsed.
    path = damaged.snapshot_dir(snapshot.id) / "manifest.json"
    raw = json.loads(path.read_text())
    for collection in raw["collections"]:
        del collection["metadata_sha256"]
    path.write_text(json.dumps(raw))
    metadata.write_text('{"options": {\n')
    report = verify_snapshot(damaged, snapshot.id, deep=False)
    assert report.problem_count == 1 and "users.metadata.json is damaged" in report.problems[0], report.problems
    with pytest.raises(RepositoryError, match="users.metadata.json is damaged"):
        await restore_snapshot(cleaned, damaged, snapshot.id)
    assert _documents(cleaned) == {}  # refused before anything was written (the bucket is not even made)

    # Whole again, the old snapshot verifies and restores.
    shutil.copyfile(repo.dump_path(snapshot.id, snapshot.database, "users", ".metadata.json"), metadata)
    assert verify_snapshot(damaged, snapshot.id).problem_count == 0
    restored = await restore_snapshot(cleaned, damaged, snapshot.id)
    assert restored.documents == sum(c.documents for c in snapshot.collections)


def _cli(tmp_path: Path, settings: SearchSettings, *args: str):
    from typer.testing import CliRunner

    from services.cli import app

    env = {f"CORPUS_{k.upper()}": v for k, v in settings.model_dump(include={"mongo_db", "minio_bucket", "es_index_prefix"}).items()}
    result = CliRunner().invoke(app, ["backup", *args, "--repo", str(tmp_path)], env=env)
    return result, " ".join(result.output.split())


def test_a_damaged_manifest_or_listing_ends_each_command_with_its_reason(corpus, source, repo, snapshot, tmp_path):
    damaged = _copy(repo, tmp_path)
    made, said = _cli(damaged.root, source, "create")
    assert made.exit_code == 0, said
    older, newest = damaged.snapshot_ids()[0], damaged.snapshot_ids()[-1]
    listing = damaged.snapshot_dir(newest) / "objects.jsonl.gz"
    whole_listing = listing.read_bytes()
    listing.write_bytes(whole_listing[: len(whole_listing) // 2])

    pruned, said = _cli(damaged.root, source, "prune", "--keep", "1")
    assert pruned.exit_code == 2 and f"nothing was pruned: snapshot {newest}" in said and str(listing) in said, said
    assert damaged.snapshot_ids()[0] == older and damaged.snapshot_ids()[-1] == newest  # nothing removed

    # A new snapshot does not trust the damaged one to say what is stored: it reads every object again.
    made, said = _cli(damaged.root, source, "create")
    assert made.exit_code == 0 and f"the previous snapshot {newest} is damaged" in said, said
    fresh = damaged.manifest(damaged.snapshot_ids()[-1])
    assert fresh.copied == fresh.objects and verify_snapshot(damaged, fresh.id).problem_count == 0

    manifest = damaged.snapshot_dir(older) / "manifest.json"
    raw = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({k: v for k, v in raw.items() if k != "objects"}))
    listed, said = _cli(damaged.root, source, "list")
    assert listed.exit_code == 1 and f"the manifest {manifest} cannot be used" in said and fresh.id in said, said
    checked, said = _cli(damaged.root, source, "verify", older)
    assert checked.exit_code == 2 and str(manifest) in said and "Traceback" not in said, said
