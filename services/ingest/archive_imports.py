"""Imports from an uploaded archive: ``POST /v1/imports:upload``, and the worker's side of it.

The request streams the archive to a temporary file (SHA-256 computed on the
way, byte cap enforced), checks what can be checked before unpacking (the
format; a zip's names and declared sizes: see :mod:`services.ingest.domain.archives`),
stores it in the object store under ``imports/<job id>/archive`` and only then
creates the job and answers 202: the accepted archive is durable and any
ingest process can run the job.

The process that claims the job unpacks it (:mod:`services.ingest.archive_staging`).
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from services.ingest.archive_staging import UPLOADS, archive_key, limits
from services.ingest.config import IngestSettings
from services.ingest.deps import DEPS, IMPORT_WORKER, INGEST_SETTINGS, JOBS
from services.ingest.domain import archives
from services.ingest.domain.archives import ArchiveRefused
from services.ingest.domain.datasets import KINDS
from services.ingest.uploads import CHUNK, disposition, read_text_field, require_multipart, too_large
from shared.auth import PRINCIPAL
from shared.naming import split_csv_names
from shared.problems import Problem, problem_type
from shared.web import idempotency

FIELDS = ("kind", "path", "dataset", "tags", "licence", "author")


def _refused(exc: ArchiveRefused) -> Problem:
    return Problem(422, "Unprocessable Content", exc.message, type_=problem_type(exc.reason.replace("_", "-")), reason=exc.reason)


def _staging_unavailable(exc: OSError) -> Problem:
    """The staging disk is full or unwritable: the server's problem, said so (and logged by the caller's 5xx)."""
    return Problem(
        507, "Insufficient Storage", f"The archive could not be spooled on the ingest server: {exc.strerror or exc}.",
        type_=problem_type("staging-unavailable"),
    )


class _Spool:
    """The archive part written to a temporary file, hashed on the way, with a byte cap."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False)
        except OSError as exc:
            raise _staging_unavailable(exc) from None
        self.path, self._file, self._hash = Path(handle.name), handle, hashlib.sha256()
        self.size, self.max_bytes = 0, max_bytes

    def _write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)

    async def fill(self, part: BodyPartReader) -> None:
        while chunk := await part.read_chunk(CHUNK):
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise too_large("The archive", self.max_bytes)
            try:
                await asyncio.to_thread(self._write, chunk)
            except OSError as exc:
                raise _staging_unavailable(exc) from None
        await asyncio.to_thread(self._file.close)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def remove(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


async def _read_upload(request: web.Request, settings: IngestSettings) -> tuple[_Spool, str | None, dict[str, str]]:
    require_multipart(request, "Send multipart/form-data with the archive in a part named 'archive'.")
    reader = await request.multipart()
    spool: _Spool | None = None
    filename: str | None = None
    fields: dict[str, str] = {}
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise Problem(400, "Bad Request", "Nested multipart bodies are not accepted.")
            name, part_filename = disposition(part)
            if name == "archive" and spool is None:
                filename = part_filename
                spool = _Spool(settings.import_staging_dir / UPLOADS, settings.import_archive_max_bytes)
                await spool.fill(part)
                if (fp := idempotency.fingerprint_of(request)) is not None:
                    fp.file(name, filename, spool.sha256)
            elif name in FIELDS:
                fields[name] = await read_text_field(part, name, request)
            else:
                shown = ", ".join(repr(f) for f in ("archive", *FIELDS))
                raise Problem(400, "Bad Request", f"Unexpected form field {name!r}; the fields are {shown} (one archive).", type_=problem_type("unknown-field"))
    except BaseException:
        if spool is not None:
            spool.remove()
        raise
    if spool is None:
        raise Problem(400, "Bad Request", "The request has no part named 'archive'.", type_=problem_type("missing-file"))
    return spool, filename, fields


async def upload_import(request: web.Request) -> web.Response:
    async def produce() -> tuple[int, dict[str, Any], dict[str, str]]:
        from services.ingest.import_views import ImportOut

        settings = request.app[INGEST_SETTINGS]
        spool, filename, fields = await _read_upload(request, settings)
        try:
            kind = fields.get("kind", "")
            if kind not in KINDS:
                raise Problem(422, "Unprocessable Content", f"Give kind, one of {', '.join(KINDS)}.", type_=problem_type("import-kind"))
            try:
                inner = archives.inner_path(fields.get("path"))
                fmt = await asyncio.to_thread(archives.archive_format, spool.path)
                await asyncio.to_thread(archives.check, spool.path, fmt, limits(settings))
            except ArchiveRefused as exc:
                raise _refused(exc) from None
            job_id = uuid.uuid4().hex
            await request.app[DEPS].blobs.put_file(archive_key(job_id), spool.path)
        finally:
            spool.remove()
        name = filename or "archive"
        job = await request.app[JOBS].create(
            {
                "_id": job_id,
                "kind": kind,
                "path": inner or "",
                "archive": {"name": name, "bytes": spool.size, "sha256": spool.sha256, "format": fmt},
                "dataset": (fields.get("dataset") or archives.dataset_name(name)).strip()[:200],
                "tags": split_csv_names(fields.get("tags")),
                "licence": fields.get("licence") or None,
                "author": fields.get("author") or None,
                "created_by": request[PRINCIPAL].user_id,
            }
        )
        request.app[IMPORT_WORKER].nudge()
        return 202, ImportOut.of(job), {"Location": f"/v1/imports/{job_id}"}

    async def reread() -> None:
        spool, _, _ = await _read_upload(request, request.app[INGEST_SETTINGS])
        spool.remove()

    return await idempotency.respond(request, "import-upload", produce, reread)
