"""Search parameters → an Elasticsearch request body, and the opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, Field

from shared.problems import Problem, problem_type

# The stable order pages are cut in: newest first, the id breaking ties.
SORT = [{"created_at": {"order": "desc"}}, {"image_id": {"order": "asc"}}]
TEXT_FIELDS = ["text", "tags^2"]
HIDDEN_FIELDS = ["text"]


class SearchParams(BaseModel):
    q: str | None = None
    limit: int = Field(default=20, ge=1)
    cursor: list[Any] | None = None


def encode_cursor(sort_values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(sort_values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != len(SORT):
        raise Problem(
            400,
            "Bad Request",
            "The cursor is not one this service issued; pass the 'next' value of a previous page unchanged.",
            type_=problem_type("bad-cursor"),
        )
    return values


def parse_params(query: dict[str, str], *, default_limit: int, max_limit: int) -> SearchParams:
    known = {"q", "limit", "cursor"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise Problem(
            400,
            "Bad Request",
            f"Unknown parameter(s) {', '.join(unknown)}; the parameters are {', '.join(sorted(known))}.",
            type_=problem_type("unknown-parameter"),
        )
    limit_raw = query.get("limit")
    try:
        limit = int(limit_raw) if limit_raw is not None else default_limit
    except ValueError:
        raise Problem(400, "Bad Request", f"limit must be an integer, not {limit_raw!r}.") from None
    if not 1 <= limit <= max_limit:
        raise Problem(
            400, "Bad Request", f"limit must be between 1 and {max_limit}, not {limit}.", type_=problem_type("bad-limit")
        )
    cursor = decode_cursor(query["cursor"]) if query.get("cursor") else None
    q = (query.get("q") or "").strip() or None
    return SearchParams(q=q, limit=limit, cursor=cursor)


def build_search(params: SearchParams) -> dict[str, Any]:
    """The request body. Free text goes through simple_query_string on a fixed field list:
    its syntax errors never fail a request and it cannot reach other fields."""
    if params.q:
        query: dict[str, Any] = {
            "simple_query_string": {"query": params.q, "fields": TEXT_FIELDS, "default_operator": "and"}
        }
    else:
        query = {"match_all": {}}
    body: dict[str, Any] = {
        "query": query,
        "sort": SORT,
        "size": params.limit,
        "track_total_hits": True,
        "_source": {"excludes": HIDDEN_FIELDS},
    }
    if params.cursor:
        body["search_after"] = params.cursor
    return body
