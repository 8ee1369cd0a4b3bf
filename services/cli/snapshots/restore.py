"""Restoring a snapshot into the configured stores (any database and bucket: a new machine, a staging copy).

Order, as ingest writes: objects first, then documents, so a restore that
stops midway leaves at worst blobs without documents (the orphan sweep's
business), never a document whose blob is missing. Every object is checked
against its SHA-256 on the way (and MinIO checks it again on arrival);
every collection dump against the manifest before a document of it is
written.

A restore refuses a database that holds documents already, unless told to
replace the snapshot's collections; it marks its start and end in
``backup_restores``, so running it again after an interruption carries on
where it stopped (objects already there and documents already inserted are
skipped). Elasticsearch is rebuilt from the restored documents afterwards
by the caller (``corpus search reindex``).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bson
from pymongo import IndexModel
from pymongo.errors import BulkWriteError, CollectionInvalid

from services.cli.progress import Report, quiet
from services.cli.snapshots.repository import OBJECTS, Manifest, ObjectEntry, Repository, RepositoryError, sha256_of_file
from services.cli.snapshots.take import RAW, RESTORES
from shared.clients.blobs import BlobStore
from shared.clients.mongo import database, mongo_client
from shared.settings import CorpusSettings

BATCH = 1000
DUPLICATE_KEY = 11000
# Objects above this go from their file, in parts; below it in one request with their checksum.
WHOLE_PUT_LIMIT = 64 * 1024 * 1024
UPLOADERS = 8
INSERTERS = 4  # insert batches in flight per collection


class RestoreRefused(Exception):
    """The target is not one this restore may write into (it holds other data)."""


@dataclass
class RestoreReport:
    snapshot: str
    database: str
    bucket: str
    documents: int = 0
    already_there_documents: int = 0
    objects: int = 0
    already_there_objects: int = 0

async def _prepare(db: Any, manifest: Manifest, replace: bool) -> None:
    names = [c.name for c in manifest.collections]
    # One document found, not the collection's count: the count is an estimate, which reads low (even 0)
    # after an unclean shutdown until MongoDB validates the collection.
    occupied = [name for name in names if await db[name].find_one({}, {"_id": 1}) is not None]
    resuming = await db[RESTORES].find_one({"_id": manifest.id, "finished_at": None})
    if occupied and not (replace or resuming):
        raise RestoreRefused(
            f"database {db.name!r} already holds documents ({', '.join(occupied)}): restore into an empty database, "
            "or pass --replace to drop the snapshot's collections there first"
        )
    if replace:
        for name in names:
            await db.drop_collection(name)
    await db[RESTORES].update_one(
        {"_id": manifest.id},
        {"$set": {"started_at": datetime.now(UTC), "finished_at": None, "source_database": manifest.database}},
        upsert=True,
    )


async def _restore_objects(settings: CorpusSettings, repo: Repository, manifest: Manifest, report: RestoreReport, progress: Report) -> None:
    blobs = BlobStore(settings)
    gate = asyncio.Semaphore(UPLOADERS)
    progress("objects", 0, manifest.objects)
    try:
        await blobs.ensure_bucket()
        present = {obj.key: (obj.size, obj.etag) async for page in blobs.inventory_pages() for obj in page}

        async def upload(entry: ObjectEntry) -> None:
            if present.get(entry.key) == (entry.size, entry.etag):  # the same bytes (a restore that stopped midway wrote it)
                report.already_there_objects += 1
                return
            path = repo.blob_path(entry.sha256)
            if not path.is_file():
                raise RepositoryError(f"object {entry.key} is missing from the repository (blob {entry.sha256})")
            async with gate:
                if entry.size > WHOLE_PUT_LIMIT:
                    if await asyncio.to_thread(sha256_of_file, path) != entry.sha256:
                        raise RepositoryError(f"object {entry.key}: blob {entry.sha256} in the repository is damaged")
                    await blobs.put_file(entry.key, path, entry.content_type)
                else:
                    data = await asyncio.to_thread(path.read_bytes)
                    if hashlib.sha256(data).hexdigest() != entry.sha256:
                        raise RepositoryError(f"object {entry.key}: blob {entry.sha256} in the repository is damaged")
                    await blobs.put(entry.key, data, entry.content_type, sha256=entry.sha256)
            report.objects += 1

        for batch in _batches(repo.objects(manifest.id)):
            await asyncio.gather(*(upload(entry) for entry in batch))
            progress("objects", report.objects + report.already_there_objects, manifest.objects)
    finally:
        await blobs.close()


async def _insert(collection: Any, documents: list[Any], report: RestoreReport) -> None:
    try:
        await collection.insert_many(documents, ordered=False)
        report.documents += len(documents)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error["code"] != DUPLICATE_KEY for error in errors):
            raise
        report.already_there_documents += len(errors)  # an earlier, interrupted run of this restore wrote them
        report.documents += len(documents) - len(errors)


def _batches(documents: Iterator[Any]) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(documents, BATCH)):
        yield batch


def _index_models(metadata: dict[str, Any]) -> list[IndexModel]:
    models = []
    for spec in metadata.get("indexes", []):
        if spec["name"] == "_id_":
            continue
        options = {k: v for k, v in spec.items() if k not in ("v", "key", "ns")}
        models.append(IndexModel(list(spec["key"].items()), **options))
    return models


def _check_snapshot(repo: Repository, manifest: Manifest) -> dict[str, dict[str, Any]]:
    """Refuse a snapshot whose files do not match its manifest, before anything is written; return each collection's metadata.

    The metadata files are read here, all of them, so that one that does not parse stops the restore
    before its first write, not after the collections before it were restored.
    """
    if not repo.listing_is_whole(manifest):
        listing = repo.snapshot_dir(manifest.id) / OBJECTS
        raise RepositoryError(f"the object listing {listing} is missing or damaged: it does not match the manifest")
    for entry in manifest.collections:
        if not repo.dump_is_whole(manifest, entry):
            path = repo.dump_path(manifest.id, manifest.database, entry.name, ".bson.gz")
            raise RepositoryError(f"the dump of {entry.name} ({path}) is missing or damaged: it does not match the manifest")
    return {entry.name: repo.metadata(manifest, entry) for entry in manifest.collections}


async def _restore_collections(
    db: Any, repo: Repository, manifest: Manifest, metadatas: dict[str, dict[str, Any]], report: RestoreReport, progress: Report
) -> None:
    total = sum(c.documents for c in manifest.collections)
    for entry in manifest.collections:
        metadata = metadatas[entry.name]  # read and checked before anything was written
        try:
            await db.create_collection(entry.name, **metadata.get("options", {}))
        except CollectionInvalid:
            pass  # there already (an interrupted run of this restore made it)
        collection = db.get_collection(entry.name, codec_options=RAW)
        gate = asyncio.Semaphore(INSERTERS)

        async def insert(batch: list[Any]) -> None:
            try:
                await _insert(collection, batch, report)
            finally:
                gate.release()

        try:
            async with asyncio.TaskGroup() as inserts:  # a failed insert stops the others and the reading
                with gzip.open(repo.dump_path(manifest.id, manifest.database, entry.name, ".bson.gz"), "rb") as packed:
                    for batch in _batches(bson.decode_file_iter(packed, codec_options=RAW)):
                        await gate.acquire()
                        inserts.create_task(insert(batch))
                        progress(f"documents: {entry.name}", report.documents + report.already_there_documents, total)
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        if models := _index_models(metadata):
            await collection.create_indexes(models)
        progress(f"documents: {entry.name}", report.documents + report.already_there_documents, total)


async def restore_snapshot(
    settings: CorpusSettings, repo: Repository, snapshot_id: str | None = None, *, replace: bool = False, progress: Report = quiet
) -> RestoreReport:
    """Restore a snapshot (the latest when none is named) into the database and bucket of ``settings``."""
    with repo.locked(exclusive=False):
        manifest = repo.manifest(repo.resolve(snapshot_id))
        progress("checking the snapshot", 0, None)
        metadatas = await asyncio.to_thread(_check_snapshot, repo, manifest)
        report = RestoreReport(manifest.id, settings.mongo_db, settings.minio_bucket)
        client = mongo_client(settings)
        db = database(client, settings)
        try:
            await _prepare(db, manifest, replace)
            await _restore_objects(settings, repo, manifest, report, progress)
            await _restore_collections(db, repo, manifest, metadatas, report, progress)
            await db[RESTORES].update_one({"_id": manifest.id}, {"$set": {"finished_at": datetime.now(UTC)}})
        finally:
            await client.close()
        return report
