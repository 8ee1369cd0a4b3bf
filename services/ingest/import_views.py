"""HTTP handlers for dataset imports and for listing rejections."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from services.ingest.adapters.rejections import list_rejections
from shared.cursors import BadCursor
from services.ingest.deps import IMPORT_WORKER, INGEST_SETTINGS, JOBS
from services.ingest.domain.datasets import KINDS
from services.ingest.views import json_body
from shared.auth import PRINCIPAL
from shared.naming import normalize_names
from shared.problems import Problem, problem_type
from shared.web import idempotency
from shared.web.query import bad_parameter, refuse_unknown, single_values
from shared.web.resources import MONGO
from shared.web.responses import json_response


class ImportRequest(BaseModel):
    kind: str = Field(description="folder | coco | yolo | voc")
    path: str = Field(description="Path on the ingest server, under one of CORPUS_IMPORT_ROOTS")
    dataset: str | None = Field(default=None, description="Dataset name (default: the folder's name)")
    tags: list[str] = []
    licence: str | None = None
    author: str | None = None


class ArchiveOut(BaseModel):
    name: str
    bytes: int
    sha256: str
    format: str  # zip | tar


class ImportOut(BaseModel):
    id: str
    kind: str
    path: str  # on the server; for an uploaded archive, inside it ("" : its root folder)
    archive: ArchiveOut | None = None  # set when the dataset came as an upload
    dataset: str
    status: str  # queued | running | done | failed
    total: int | None
    processed: int
    counts: dict[str, int]
    warnings: list[str]  # the first 100
    warnings_total: int  # all of them
    error: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, job: dict[str, Any]) -> dict[str, Any]:
        return cls.model_validate({"warnings_total": len(job.get("warnings", [])), **job, "id": job["_id"]}).model_dump(mode="json")


def _unusable_path(raw: str, why: str) -> Problem:
    shown = raw if len(raw) <= 120 else f"{raw[:120]}…"
    return Problem(422, "Unprocessable Content", f"The path {shown!r} cannot be used: {why}.", type_=problem_type("import-path"))


def _resolved(raw: str) -> Path:
    """The path as the server would open it. The operating system refuses some paths outright (a NUL byte,
    a name too long, ``~user`` for an unknown user, a link loop): those are the request's fault, a 422."""
    if "\x00" in raw:
        raise _unusable_path(raw, "it contains a NUL character")
    try:
        return Path(raw).expanduser().resolve()
    except RuntimeError as exc:  # ~user with no such user; a symbolic link loop
        raise _unusable_path(raw, str(exc)) from None
    except OSError as exc:
        raise _unusable_path(raw, exc.strerror or str(exc)) from None


def _allowed_path(raw: str, roots: list[Path]) -> Path:
    if not roots:
        raise Problem(
            403, "Forbidden", "No folder is open to imports on this server: set CORPUS_IMPORT_ROOTS.", type_=problem_type("import-root")
        )
    path = _resolved(raw)
    if not any(path.is_relative_to(root.resolve()) for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise Problem(403, "Forbidden", f"{path} is outside the import roots ({shown}).", type_=problem_type("import-root"))
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system, say
        raise _unusable_path(raw, exc.strerror or str(exc)) from None
    if not exists:
        raise Problem(422, "Unprocessable Content", f"{path} does not exist on the ingest server.", type_=problem_type("import-path"))
    return path


async def create_import(request: web.Request) -> web.Response:
    async def produce():
        body = await json_body(request, ImportRequest, '{"kind": "coco", "path": "/data/coco"}')
        if body.kind not in KINDS:
            raise Problem(422, "Unprocessable Content", f"Unknown kind {body.kind!r}; use one of {', '.join(KINDS)}.", type_=problem_type("import-kind"))
        path = _allowed_path(body.path, request.app[INGEST_SETTINGS].import_roots)
        default_name = path.parent.parent.name if body.kind == "coco" and path.is_file() else path.name
        job = await request.app[JOBS].create(
            {
                "_id": uuid.uuid4().hex,
                "kind": body.kind,
                "path": str(path),
                "dataset": (body.dataset or default_name).strip()[:200],
                "tags": normalize_names(body.tags),
                "licence": body.licence,
                "author": body.author,
                "created_by": request[PRINCIPAL].user_id,
            }
        )
        request.app[IMPORT_WORKER].nudge()
        return 202, ImportOut.of(job), {"Location": f"/v1/imports/{job['_id']}"}

    return await idempotency.respond(request, "import", produce)


async def get_import(request: web.Request) -> web.Response:
    job = await request.app[JOBS].get(request.match_info["import_id"])
    if job is None:
        raise Problem(404, "Not Found", f"No import has id {request.match_info['import_id']!r}.", type_=problem_type("not-found"))
    return web.json_response(ImportOut.of(job))


def _limit(request: web.Request) -> int:
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 500:
        raise Problem(400, "Bad Request", "limit must be a whole number from 1 to 500.", type_=problem_type("invalid-parameter"))
    return limit


JOB_STATUSES = ("queued", "running", "done", "failed")


def _parameters(request: web.Request, known: tuple[str, ...], choices: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """The query's parameters, each given once, each one ``known``, each in its ``choices`` if it has them:
    a misspelt filter (``?staus=done``) used to be ignored and answer everything, as if it had matched."""
    refuse_unknown(request.query, known)
    query = single_values(request.query)
    for name, allowed in choices.items():
        if query.get(name) and query[name] not in allowed:
            raise bad_parameter(f"{name} is one of {', '.join(allowed)}, not {query[name][:80]!r}.", "invalid-parameter")
    return {name: value for name, value in query.items() if value}


async def _page(fetch: Any) -> tuple[list[dict[str, Any]], str | None]:
    try:
        return await fetch
    except BadCursor:
        raise bad_parameter("The cursor is not one this API handed out; start again without it.", "bad-cursor") from None


async def list_imports(request: web.Request) -> web.Response:
    given = _parameters(request, ("status", "kind", "limit", "cursor"), {"status": JOB_STATUSES, "kind": KINDS})
    jobs = request.app[JOBS].page(_limit(request), given.get("cursor"), status=given.get("status"), kind=given.get("kind"))
    page, next_cursor = await _page(jobs)
    return json_response({"items": [ImportOut.of(job) for job in page], "next": next_cursor})


async def get_rejections(request: web.Request) -> web.Response:
    # source_kind is free text: a producer names its own kind (image.submitted's source.kind).
    given = _parameters(request, ("reason", "source_kind", "import_id", "limit", "cursor"), {})
    page, next_cursor = await _page(
        list_rejections(
            request.app[MONGO], limit=_limit(request), cursor=given.get("cursor"), reason=given.get("reason"),
            source_kind=given.get("source_kind"), import_id=given.get("import_id"),
        )
    )  # fmt: skip
    items = [
        {
            "id": r["_id"],
            "reason": r["reason"],
            "message": r["message"],
            "source": r.get("source"),
            "filename": r.get("filename"),
            "sha256": r.get("sha256"),
            "bytes": r.get("bytes"),
            "origin": r.get("origin"),
            "uploader": r.get("uploader"),
            "rejected_at": r["rejected_at"].isoformat(),
        }
        for r in page
    ]
    return json_response({"items": items, "next": next_cursor})  # an origin holds its fetch time

