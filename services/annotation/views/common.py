"""What every annotation view shares: body parsing, ETags, cursors, domain errors as problems."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from aiohttp import web

from services.annotation.deps import DEPS
from services.annotation.domain.errors import AnnotationError, VersionConflict
from services.annotation.domain.model import MAX_VERSION
from shared.cursors import BadCursor
from shared.cursors import decode_cursor as decode_value
from shared.cursors import encode_cursor as encode_value
from shared.problems import Problem, problem_type
from shared.readmodels import AnnotationOut
from shared.web import bodies

body_as = bodies.body_as  # the views take it from here, beside the other helpers they share
T = TypeVar("T", int, str)
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


def etag(version: int) -> str:
    return f'"{version}"'


def if_match(request: web.Request) -> int:
    """The version the caller last saw. Writes require it: without it a write could silently undo another."""
    raw = request.headers.get("If-Match")
    if raw is None:
        raise Problem(
            428, "Precondition Required",
            "Send 'If-Match' with the annotation's ETag (its version), as read from GET; this keeps concurrent edits from being lost.",
            type_=problem_type("if-match-required"),
        )  # fmt: skip
    value = raw.strip().removeprefix("W/").strip('"')
    if not _ascii_digits(value):
        raise Problem(400, "Bad Request", f"If-Match {raw!r} is not an ETag this service gave out (a quoted version number).")
    return int(value)


def _ascii_digits(value: str) -> bool:
    """``str.isdigit`` is true for '²' and other digits ``int`` refuses: only 0-9 count here."""
    return value.isascii() and value.isdigit()


def limit_of(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not _ascii_digits(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(400, "Bad Request", f"'limit' must be an integer from 1 to {MAX_LIMIT}.")
    return int(raw)


def _bad_cursor() -> Problem:
    return Problem(400, "Bad Request", "'cursor' is not one this service gave out; pass 'next' back unchanged.")


def next_cursor(docs: list[dict[str, Any]], limit: int, key: str = "_id") -> str | None:
    """The cursor of the page after ``docs`` (the ``key`` of its last item, which :func:`decode_cursor` reads
    back), or None when the page is shorter than ``limit``: there is no more."""
    return encode_value(docs[-1][key]) if len(docs) == limit else None


def decode_cursor(request: web.Request, default: T) -> T:
    """The cursor, of the same type as ``default`` (the cursors this service gives out are a version or
    an id or name): anything else, a JSON object or a number MongoDB cannot hold, is a 400, never a query."""
    raw = request.query.get("cursor")
    if not raw:
        return default
    try:
        value = decode_value(raw)
    except BadCursor:
        raise _bad_cursor() from None
    if type(value) is not type(default):  # type(): True is an int, but no version
        raise _bad_cursor()
    if isinstance(value, int) and not 0 <= value <= MAX_VERSION:
        raise _bad_cursor()
    return value


async def annotation_out(request: web.Request, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = await request.app[DEPS].labels.names_of({doc["label_id"] for doc in docs})
    return [AnnotationOut.of(doc, names.get(doc["label_id"], "")).model_dump(mode="json") for doc in docs]


def domain_errors(view):
    """Turn the domain's errors into problem details; a 412 carries the current state and its ETag."""

    @functools.wraps(view)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await view(request)
        except AnnotationError as exc:
            extra, headers = dict(exc.extra), {}
            annotation_id = request.match_info.get("annotation_id")
            if isinstance(exc, VersionConflict) and annotation_id:
                doc = await request.app[DEPS].annotations.get(annotation_id)
                if doc is not None:
                    extra["current"] = (await annotation_out(request, [doc]))[0]
                    headers["ETag"] = etag(doc["version"])
            raise Problem(
                exc.status, exc.title, exc.detail, type_=problem_type(exc.slug), headers=headers, **extra
            ) from None

    return wrapped
