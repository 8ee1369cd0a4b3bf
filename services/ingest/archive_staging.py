"""An archive import's unpacked tree, on the machine of the process that runs the job.

That process downloads the archive (stored by ``POST /v1/imports:upload``) into
``CORPUS_IMPORT_STAGING_DIR/<job id>``, verifies its SHA-256, unpacks it with
every member checked (:mod:`services.ingest.domain.archives`), and the job then
reads the dataset from there like a folder import. A marker file says the
unpacking finished, so a process resuming the job on the same machine reuses
the tree and one on another machine unpacks it again; the items come out in
the same order either way. When the job ends, the tree and the stored archive
are removed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from minio.error import S3Error

from services.ingest.config import IngestSettings
from services.ingest.domain import archives
from services.ingest.domain.archives import ArchiveRefused, Limits
from services.ingest.domain.datasets import DatasetError
from shared.clients.blobs import BlobStore

log = logging.getLogger(__name__)

COMPLETE = ".unpacked"
UPLOADS = "uploads"  # archives being received, before they are stored (archive_imports.py)
STALE_UPLOAD_SECONDS = 24 * 3600


def archive_key(job_id: str) -> str:
    return f"imports/{job_id}/archive"


def limits(settings: IngestSettings) -> Limits:
    return Limits(settings.import_archive_max_expanded_bytes, settings.import_archive_max_members)


class ArchiveStaging:
    """The worker's side: an archive job's unpacked tree on this machine, made on demand and removed at the end."""

    def __init__(self, blobs: BlobStore, settings: IngestSettings) -> None:
        self.blobs, self.settings = blobs, settings

    def folder(self, job_id: str) -> Path:
        return self.settings.import_staging_dir / job_id

    async def dataset_path(self, job: dict[str, Any]) -> Path:
        """The dataset's path inside the unpacked archive (unpacking it first if this machine has not).

        DatasetError when the archive is refused or damaged (the job fails with the reason); the object
        store's errors propagate (the job stays leased and is retried).
        """
        folder, archive = self.folder(job["_id"]), job["archive"]
        tree = folder / "tree"
        if not (folder / COMPLETE).exists():
            await asyncio.to_thread(shutil.rmtree, folder, True)  # a partial unpacking, if any
            folder.mkdir(parents=True)
            download = folder / "archive"
            try:
                await self.blobs.get_file(archive_key(job["_id"]), download)
            except S3Error as exc:
                if exc.code not in ("NoSuchKey", "NoSuchObject"):
                    raise
                raise DatasetError(f"The archive {archive['name']!r} is no longer in the object store.") from None
            try:
                await asyncio.to_thread(self._unpack, download, archive, tree)
            except ArchiveRefused as exc:
                raise DatasetError(f"The archive {archive['name']!r} was refused: {exc.message}") from None
            (folder / COMPLETE).touch()
        return archives.dataset_root(tree, job["path"] or None)

    def _unpack(self, download: Path, archive: dict[str, Any], tree: Path) -> None:
        digest = hashlib.sha256()
        with open(download, "rb") as handle:
            while chunk := handle.read(archives.COPY_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != archive["sha256"]:
            raise ArchiveRefused("checksum_mismatch", "The stored archive's SHA-256 is not the one uploaded.")
        try:
            archives.unpack(download, archive["format"], tree, limits(self.settings))
        finally:
            download.unlink(missing_ok=True)

    async def remove(self, job: dict[str, Any]) -> None:
        """The job ended: its tree here and its archive in the object store go."""
        await asyncio.to_thread(shutil.rmtree, self.folder(job["_id"]), True)
        await self.blobs.delete(archive_key(job["_id"]))

    async def clear_leftovers(self, live_jobs: set[str]) -> int:
        """At start: remove trees of jobs that are no longer queued or running here (ended, or taken over by
        another machine that unpacked its own), and spooled uploads a crash left (older than a day).
        Returns how many entries were removed."""
        return await asyncio.to_thread(self._clear, live_jobs)

    def _clear(self, live_jobs: set[str]) -> int:
        root = self.settings.import_staging_dir
        if not root.is_dir():
            return 0
        removed = 0
        for entry in root.iterdir():
            if entry.name == UPLOADS:
                for spooled in entry.iterdir():
                    if time.time() - spooled.stat().st_mtime > STALE_UPLOAD_SECONDS:
                        spooled.unlink(missing_ok=True)
                        removed += 1
            elif entry.is_dir() and entry.name not in live_jobs:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        if removed:
            log.info("import staging cleared", extra={"removed": removed, "folder": str(root)})
        return removed
