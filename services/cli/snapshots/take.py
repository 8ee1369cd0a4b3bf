"""Taking a snapshot: every collection of the corpus database read at one point in time, then the bucket.

MongoDB is read in one snapshot session (read concern ``snapshot``): every
collection as it was at one cluster time, so an annotation and its history,
an image and its outbox event, agree with each other however long the dump
takes and whatever the services write meanwhile. MongoDB keeps that point in
time for ``minSnapshotHistoryWindowInSeconds`` (300 s by default); a dump
that takes longer fails with a message saying which parameter to raise.

The bucket is listed after the documents were read. Ingest writes an image's
blobs before its document (architecture: blob, then document and event in
one transaction), so every object a snapshotted document names is already in
the bucket; the snapshot checks that, and names any that are missing. Objects
written after the snapshot time are copied too: on restore they are blobs
without a document, which the orphan sweep removes.

Each object is copied once into the repository's blob store, under the
SHA-256 of its bytes. An object whose key, size and ETag match the previous
snapshot's entry is not downloaded again, so a nightly backup copies only
what arrived since the last one. Elasticsearch is not copied: it mirrors
MongoDB, and a restore rebuilds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from bson import Binary, json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.errors import OperationFailure

from services.cli.progress import Report, quiet
from services.cli.snapshots.repository import (
    OBJECTS,
    CollectionEntry,
    Manifest,
    ObjectEntry,
    Repository,
    RepositoryError,
    durable_write,
    new_snapshot_id,
    sha256_of_file,
)
from shared.clients.blobs import BlobNotFound, BlobStore, StoredObject, original_key, thumbnail_key
from shared.clients.mongo import database, mongo_client
from shared.readmodels import IMAGES
from shared.settings import CorpusSettings

RAW = CodecOptions(document_class=RawBSONDocument, tz_aware=True)
# Restores write a marker here; it belongs to the database restored into, not to its backups.
RESTORES = "backup_restores"
SNAPSHOT_TOO_OLD = 239
WINDOW = "minSnapshotHistoryWindowInSeconds"
COPIERS = 8
BATCH = 1000  # documents per cursor batch and per compressed write
IN_MEMORY_LIMIT = 64 * 1024 * 1024  # objects up to this size are fetched whole; larger ones streamed to a file
GZIP_LEVEL = 3
MISSING_LISTED = 100


class SnapshotFailed(Exception):
    """The snapshot could not be taken; nothing of it is listed (its manifest was never written)."""


def image_blob_keys(image: Any) -> list[str]:
    """The objects an image document names: its original, and its thumbnail and standard copy when it has them."""
    keys = [original_key(image["sha256"])]
    if image.get("thumbnail"):
        keys.append(thumbnail_key(image["sha256"]))
    if image.get("standard_key"):
        keys.append(image["standard_key"])
    return keys


@dataclass
class _Dump:
    collections: list[CollectionEntry] = field(default_factory=list)
    needed: set[str] = field(default_factory=set)  # object keys the image documents name
    images: int = 0
    cluster_time: list[int] | None = None


async def _collections(db: Any) -> list[dict[str, Any]]:
    cursor = await db.list_collections(filter={"type": "collection"})
    infos = await cursor.to_list()
    return sorted((i for i in infos if not i["name"].startswith("system.") and i["name"] != RESTORES), key=lambda i: i["name"])


def _metadata(info: dict[str, Any], indexes: list[Any]) -> bytes:
    """mongodump's ``<collection>.metadata.json``: options, indexes, UUID, in relaxed extended JSON."""
    uuid = info.get("info", {}).get("uuid")
    if isinstance(uuid, Binary):
        uuid = uuid.as_uuid()
    doc = {
        "options": info.get("options", {}),
        "indexes": indexes,
        "uuid": uuid.hex if isinstance(uuid, UUID) else "",
        "collectionName": info["name"],
        "type": "collection",
    }
    return json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS).encode()


@contextlib.asynccontextmanager
async def _history_window(client: Any, seconds: int | None) -> AsyncIterator[None]:
    """Hold MongoDB's snapshot history at least ``seconds`` long while the dump runs, then put it back."""
    admin = client.admin
    before = (await admin.command({"getParameter": 1, WINDOW: 1}))[WINDOW] if seconds else None
    if before is not None and seconds > before:
        await admin.command({"setParameter": 1, WINDOW: seconds})
    try:
        yield
    finally:
        if before is not None and seconds > before:
            await admin.command({"setParameter": 1, WINDOW: before})


async def _dump_mongo(settings: CorpusSettings, repo: Repository, snapshot_id: str, progress: Report, window: int | None) -> _Dump:
    client = mongo_client(settings)
    db = database(client, settings)
    dump = _Dump()
    try:
        infos = await _collections(db)
        async with _history_window(client, window), client.start_session(snapshot=True) as session:
            for number, info in enumerate(infos):
                name = info["name"]
                progress(f"documents: {name}", number, len(infos))
                collection = db.get_collection(name, codec_options=RAW)
                path = repo.dump_path(snapshot_id, settings.mongo_db, name, ".bson.gz")
                count, chunk = 0, []
                with durable_write(path) as handle, gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as packed:
                    async for document in collection.find({}, session=session, batch_size=BATCH):
                        chunk.append(document.raw)
                        if name == IMAGES:
                            dump.needed.update(image_blob_keys(document))
                        if len(chunk) == BATCH:  # compressed in a thread while the cursor fetches the next batch
                            await asyncio.to_thread(packed.write, b"".join(chunk))
                            count, chunk = count + len(chunk), []
                    packed.write(b"".join(chunk))
                    count += len(chunk)
                # Index definitions are not versioned data: they are read as they are now.
                indexes = await (await collection.list_indexes()).to_list()
                metadata = _metadata(info, indexes)
                with durable_write(repo.dump_path(snapshot_id, settings.mongo_db, name, ".metadata.json")) as handle:
                    handle.write(metadata)
                dump.collections.append(
                    CollectionEntry(
                        name, count, path.stat().st_size, await asyncio.to_thread(sha256_of_file, path),
                        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
                    )
                )
                if name == IMAGES:
                    dump.images = count
            # The cluster time the server chose at the first read; every read in the session used it.
            at = getattr(session, "_snapshot_time", None) or session.operation_time
            dump.cluster_time = [at.time, at.inc] if at is not None else None
    except OperationFailure as exc:
        if exc.code == SNAPSHOT_TOO_OLD:
            raise SnapshotFailed(
                f"MongoDB no longer holds the snapshot's point in time: the dump took longer than its {WINDOW} "
                "(300 s unless changed). Give the backup a longer one, e.g. --snapshot-window 3600 (it sets the "
                "parameter for the dump and puts it back after; needs the setParameter privilege)."
            ) from exc
        raise
    finally:
        await client.close()
    return dump


@dataclass
class _Copy:
    entries: list[ObjectEntry] = field(default_factory=list)
    copied: int = 0
    copied_bytes: int = 0
    vanished: int = 0  # listed, then removed before they were read: not in the snapshot


async def _copy_objects(settings: CorpusSettings, repo: Repository, previous: dict[str, ObjectEntry], progress: Report) -> _Copy:
    blobs = BlobStore(settings)
    result = _Copy()
    gate = asyncio.Semaphore(COPIERS)
    tmp = repo.tmp_dir()
    names = itertools.count()

    async def copy(obj: StoredObject) -> ObjectEntry | None:
        known = previous.get(obj.key)
        # The blob's size is checked too (not its hash: that would read every blob on every backup), so a
        # blob cut short is copied again rather than named by one more snapshot.
        if known and known.etag == obj.etag and known.size == obj.size and repo.has_blob_of_size(known.sha256, known.size):
            return known
        async with gate:
            try:
                if obj.size <= IN_MEMORY_LIMIT:
                    data, content_type = await blobs.fetch(obj.key)
                    sha256, size = await asyncio.to_thread(repo.add_blob_bytes, data), len(data)
                else:  # streamed to a file, never whole in memory
                    path = tmp / f"download-{next(names)}"
                    try:
                        sha256, size, content_type = await blobs.download(obj.key, path)
                        await asyncio.to_thread(repo.add_blob_file, path, sha256)
                    finally:
                        path.unlink(missing_ok=True)
            except BlobNotFound:  # removed after the listing (an orphan swept, a finished import's archive)
                result.vanished += 1
                return None
        result.copied += 1
        result.copied_bytes += size
        return ObjectEntry(obj.key, sha256, size, obj.etag, content_type)

    progress("objects", 0, None)
    try:
        async for page in blobs.inventory_pages():
            result.entries.extend(entry for entry in await asyncio.gather(*(copy(obj) for obj in page)) if entry)
            await asyncio.to_thread(repo.sync_blobs)
            progress("objects", len(result.entries), None)
    finally:
        await blobs.close()
    return result


def _previous_objects(repo: Repository) -> tuple[dict[str, ObjectEntry], str | None]:
    """The newest snapshot's objects by key, to skip copying those unchanged since, and a note when it cannot serve.

    A damaged manifest or listing is not trusted to say what the repository holds: every object is then
    read again (blobs already stored whole are not rewritten), and the new snapshot is complete on its own.
    """
    ids = repo.snapshot_ids()
    if not ids:
        return {}, None
    try:
        manifest = repo.manifest(ids[-1])
        if not repo.listing_is_whole(manifest):
            raise RepositoryError(f"its object listing {repo.snapshot_dir(ids[-1]) / OBJECTS} does not match its manifest")
        return {entry.key: entry for entry in repo.objects(ids[-1])}, None
    except RepositoryError as exc:
        return {}, f"the previous snapshot {ids[-1]} is damaged ({exc}); every object was read again, not only the new ones"


async def take_snapshot(
    settings: CorpusSettings, repo: Repository, *, progress: Report = quiet, snapshot_window: int | None = None
) -> Manifest:
    """Write a new snapshot of the corpus into ``repo`` and return its manifest (written last).

    ``snapshot_window``: seconds of history MongoDB must keep while the documents are read (raised for
    the dump when the server keeps less; a large corpus may take longer than the default 300 s to read).
    """
    with repo.locked(exclusive=True, create=True):
        repo.remove_leftovers()  # a snapshot that died midway: nothing refers to it
        previous, unusable = _previous_objects(repo)
        snapshot_id = new_snapshot_id()
        dump = await _dump_mongo(settings, repo, snapshot_id, progress, snapshot_window)
        copied = await _copy_objects(settings, repo, previous, progress)
        with durable_write(repo.snapshot_dir(snapshot_id) / OBJECTS) as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0) as packed:
            for entry in copied.entries:
                packed.write(entry.line())
        missing = sorted(dump.needed - {entry.key for entry in copied.entries})
        notes = [unusable] if unusable else []
        if copied.vanished:
            notes.append(f"{copied.vanished} object(s) were removed from the bucket between its listing and their copy: not in the snapshot")
        if missing:
            notes.append(
                f"{len(missing)} object(s) that image documents name are not in bucket {settings.minio_bucket!r}; "
                f"the first: {', '.join(missing[:MISSING_LISTED])}"
            )
        manifest = Manifest(
            id=snapshot_id,
            created_at=datetime.now(UTC).isoformat(),
            database=settings.mongo_db,
            bucket=settings.minio_bucket,
            cluster_time=dump.cluster_time,
            collections=dump.collections,
            objects=len(copied.entries),
            object_bytes=sum(entry.size for entry in copied.entries),
            objects_sha256=sha256_of_file(repo.snapshot_dir(snapshot_id) / OBJECTS),
            copied=copied.copied,
            copied_bytes=copied.copied_bytes,
            images=dump.images,
            missing_objects=len(missing),
            notes=notes,
        )
        repo.write_manifest(manifest)
        return manifest
