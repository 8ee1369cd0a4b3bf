"""Search's domain errors, as problem details a person can act on."""

from __future__ import annotations

from shared.problems import Problem, problem_type
from shared.web.query import bad_parameter

__all__ = ["bad_cursor", "bad_parameter", "cursor_expired", "index_missing"]


def bad_cursor(detail: str | None = None) -> Problem:
    return Problem(
        400,
        "Bad Request",
        detail or "The cursor is not one this service issued; pass the 'next' value of a previous page unchanged.",
        type_=problem_type("bad-cursor"),
    )


def cursor_expired() -> Problem:
    return Problem(
        410,
        "Gone",
        "The cursor's snapshot is gone: it expired (cursors live a few minutes between pages), a reindex replaced "
        "the index it read and that index has been dropped, or the same caller has opened many newer paging "
        "sessions since. Run the search again from the first page (without a cursor).",
        type_=problem_type("cursor-expired"),
    )


def index_missing() -> Problem:
    return Problem(
        503,
        "Service Unavailable",
        "The search index is missing; an operator must run `corpus search reindex` (or POST /v1/admin/reindex).",
        type_=problem_type("index-missing"),
    )
