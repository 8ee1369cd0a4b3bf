"""Reading multipart uploads as streams, with byte caps, into Submissions."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from services.ingest.domain.model import Origin
from services.ingest.service import Submission
from shared.naming import safe_file_name, split_csv_names
from shared.problems import Problem, problem_type
from shared.web.idempotency import fingerprint_of
from shared.web.bodies import MALFORMED_MULTIPART, malformed_multipart

FIELD_LIMIT = 64 * 1024
CHUNK = 256 * 1024
TEXT_FIELDS = ("tags", "source", "sha256", "licence", "author", "dataset")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def too_large(what: str, limit: int) -> Problem:
    return Problem(
        413, "Payload Too Large", f"{what} is larger than the limit of {limit:,} bytes.", type_=problem_type("too-large"), limit=limit
    )


def disposition(part: BodyPartReader) -> tuple[str | None, str | None]:
    """(name, filename) of a part from one parse of its Content-Disposition.

    aiohttp's ``part.name`` and ``part.filename`` each parse the header again, and
    that parse is a measurable share of a batch upload's CPU time.
    """
    _, params = parse_content_disposition(part.headers.get(hdrs.CONTENT_DISPOSITION))
    return content_disposition_filename(params, "name"), safe_file_name(content_disposition_filename(params, "filename"))


async def _multipart(request: web.Request) -> MultipartReader:
    try:
        return await request.multipart()
    except MALFORMED_MULTIPART as exc:
        raise malformed_multipart(exc) from None


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except MALFORMED_MULTIPART as exc:
        raise malformed_multipart(exc) from None
    if part is not None and not isinstance(part, BodyPartReader):
        raise Problem(400, "Bad Request", "Nested multipart bodies are not accepted.")
    return part


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    """The part's bytes as they arrive, a malformed body as a 400 problem."""
    while True:
        try:
            chunk = await part.read_chunk(CHUNK)
        except MALFORMED_MULTIPART as exc:
            raise malformed_multipart(exc) from None
        if not chunk:
            return
        yield chunk


class FileOverCap(Problem):
    """413 for a file over the per-file cap, with what is known of it, so that its refusal can be recorded."""

    def __init__(self, what: str, limit: int, submission: Submission, received: int) -> None:
        problem = too_large(what, limit)
        super().__init__(problem.status, problem.title, problem.detail, type_=problem.type, **problem.extensions)
        self.submission = submission
        self.received = received  # bytes that arrived before the file was refused


async def _read_capped(part: BodyPartReader, limit: int, what: str) -> bytes:
    buf = bytearray()
    async for chunk in _chunks(part):
        buf += chunk
        if len(buf) > limit:
            raise too_large(what, limit)
    return bytes(buf)


async def _drain(part: BodyPartReader) -> None:
    async for _ in _chunks(part):
        pass


def require_multipart(request: web.Request, hint: str = "Send multipart/form-data with the image in a part named 'file'.") -> None:
    if not request.content_type.startswith("multipart/form-data"):
        raise Problem(415, "Unsupported Media Type", hint, type_=problem_type("unsupported-media-type"))


async def read_text_field(part: BodyPartReader, name: str, request: web.Request) -> str:
    value = (await _read_capped(part, FIELD_LIMIT, f"The field '{name}'")).decode("utf-8", errors="replace").strip()
    if name == "sha256" and value and not SHA256_HEX.fullmatch(value):  # a malformed checksum is the request's fault
        raise Problem(
            400, "Bad Request", f"The field 'sha256' must be the file's SHA-256 as 64 hex digits, not {value[:80]!r}.",
            type_=problem_type("bad-checksum"),
        )  # fmt: skip
    if (fp := fingerprint_of(request)) is not None:
        fp.field(name, value)
    return value


def _unknown(name: str | None, file_field: str) -> Problem:
    fields = ", ".join(repr(f) for f in (file_field, *TEXT_FIELDS))
    return Problem(400, "Bad Request", f"Unknown form field {name!r}; the fields are {fields}.", type_=problem_type("unknown-field"))


def _submission(data: bytes, filename: str | None, fields: dict[str, str], uploader: str | None) -> Submission:
    sha = fields.get("sha256", "").lower() or None
    source = fields.get("source", "")[:500] or None
    origin = Origin(
        kind="upload",
        uri=source,
        dataset=fields.get("dataset") or None,
        licence=fields.get("licence") or None,
        author=fields.get("author") or None,
    )
    return Submission(
        data=data,
        filename=filename,
        tags=tuple(split_csv_names(fields.get("tags"))),
        source=source,
        origin=origin,
        uploader=uploader,
        expected_sha256=sha,
    )


async def read_submission(request: web.Request, max_bytes: int, uploader: str | None = None) -> Submission:
    """One image: a part named 'file' and optional text fields."""
    require_multipart(request)
    reader = await _multipart(request)
    data: bytes | None = None
    filename: str | None = None
    fields: dict[str, str] = {}
    while (part := await _next_part(reader)) is not None:
        name, part_filename = disposition(part)
        if name == "file":
            if data is not None:
                raise Problem(400, "Bad Request", "Send one part named 'file' per request (or use /v1/images:batch).")
            filename = part_filename
            what = f"The file {filename or ''}".strip()
            try:
                data = await _read_capped(part, max_bytes, what)
            except Problem as problem:
                if problem.status != 413:
                    raise
                raise FileOverCap(what, max_bytes, _submission(b"", filename, fields, uploader), max_bytes + 1) from None
            if (fp := fingerprint_of(request)) is not None:
                fp.file(name, filename, hashlib.sha256(data).hexdigest())
        elif name in TEXT_FIELDS:
            fields[name] = await read_text_field(part, name, request)
        else:
            raise _unknown(name, "file")
    if data is None:
        raise Problem(400, "Bad Request", "The request has no part named 'file'.", type_=problem_type("missing-file"))
    return _submission(data, filename, fields, uploader)


@dataclass(frozen=True)
class BatchPart:
    index: int
    filename: str | None
    submission: Submission  # without its bytes when the file is over the cap
    too_large: int | None = None  # the limit, when this file was over it
    size: int = 0  # the bytes sent for this file


async def read_batch(
    request: web.Request, *, max_file_bytes: int, max_total_bytes: int, uploader: str | None = None
) -> AsyncIterator[BatchPart]:
    """Files (parts named 'files' or 'file') in order, as they arrive.

    Text fields apply to the files after them, so send them first. A file over
    the per-file cap is reported for itself and skipped; the whole request is
    refused only past the total cap.
    """
    require_multipart(request, "Send multipart/form-data with one part named 'files' per image.")
    reader = await _multipart(request)
    fields: dict[str, str] = {}
    index = total = 0
    fp = fingerprint_of(request)
    while (part := await _next_part(reader)) is not None:
        name, filename = disposition(part)
        if name in ("files", "file"):
            buf = bytearray()
            over = False
            size = 0
            sha = hashlib.sha256() if fp is not None else None
            async for chunk in _chunks(part):
                size += len(chunk)
                total += len(chunk)
                if total > max_total_bytes:
                    raise too_large("The batch", max_total_bytes)
                if sha is not None:
                    sha.update(chunk)
                if not over:
                    buf += chunk
                    if len(buf) > max_file_bytes:
                        over, buf = True, bytearray()
            if fp is not None:
                fp.file(name, filename, sha.hexdigest())
            submission = _submission(b"" if over else bytes(buf), filename, fields, uploader)
            yield BatchPart(index, filename, submission, too_large=max_file_bytes if over else None, size=size)
            index += 1
        elif name in TEXT_FIELDS:
            fields[name] = await read_text_field(part, name, request)
        else:
            await _drain(part)
            raise _unknown(name, "files")
    if index == 0:
        raise Problem(400, "Bad Request", "The batch has no part named 'files'.", type_=problem_type("missing-file"))
