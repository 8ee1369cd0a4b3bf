"""The opaque cursor: where the last page ended (``search_after``) and the snapshot (point in time) it came from.

A cursor comes back from the caller, so it is checked before Elasticsearch sees it: its ``after``
must hold exactly the values the sort produces (a long per date or integer field, a number for
megapixels and relevance, the image id as text), longs within 64 bits, and the ``pit`` must look like
an id Elasticsearch gives out. Anything else is a cursor this service never issued: 400 ``bad-cursor``,
not a failed search. A cursor also keeps a fingerprint of each filter of its search: sent with other
filters (or another sort) it would page through another result set, so it is a ``bad-cursor`` too,
naming what differs.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from services.search.domain.errors import bad_cursor
from services.search.domain.params import SearchParams, filters_of
from shared.cursors import BadCursor, fingerprint
from shared.cursors import decode_cursor as decode_value
from shared.cursors import encode_cursor as encode_value

INT64 = (-(2**63), 2**63 - 1)
# Sort keys whose values Elasticsearch gives as longs (dates as epoch milliseconds); the others are numbers.
LONG_SORT_FIELDS = {"created_at", "captured_at", "width", "height", "bytes"}
# Point-in-time ids are URL-safe base64 (a few hundred characters for a handful of shards).
PIT_ID = re.compile(r"[A-Za-z0-9_\-+/]+={0,2}")
MAX_PIT_CHARS = 64 * 1024


class Cursor(BaseModel):
    sort: str  # the sort the pages are cut in; the next request must ask for the same
    after: list[Any]  # sort values of the last hit
    pit: str | None = None  # point-in-time id: every page reads the same snapshot
    # Parameter → fingerprint of its value: the next request must ask for the same. None in a cursor handed
    # out before cursors kept them (they live 5 minutes): not checked, so paging across the upgrade goes on.
    filters: dict[str, str] | None = None


def filter_fingerprints(params: SearchParams) -> dict[str, str]:
    return {name: fingerprint(value) for name, value in filters_of(params).items()}


def encode_cursor(cursor: Cursor) -> str:
    return encode_value(cursor.model_dump(exclude_none=True))


def _is_long(value: Any) -> bool:
    return type(value) is int and INT64[0] <= value <= INT64[1]


def _is_number(value: Any) -> bool:
    return _is_long(value) or (type(value) is float and math.isfinite(value))


def _fits(sort: str, after: list[Any]) -> bool:
    """Whether ``after`` holds the values ``sort`` produces: its key, then the image id tie-breaker."""
    key = sort.lstrip("-")
    primary = _is_long if key in LONG_SORT_FIELDS else _is_number
    return len(after) == 2 and primary(after[0]) and isinstance(after[1], str) and 0 < len(after[1]) <= 512


def _plausible_pit(pit: str | None) -> bool:
    return pit is None or (0 < len(pit) <= MAX_PIT_CHARS and PIT_ID.fullmatch(pit) is not None)


def decode_cursor(value: str, *, sort: str, sort_fields: int, filters: dict[str, str]) -> Cursor:
    """The cursor, checked against the request's sort and ``filters`` (``filter_fingerprints``)."""
    try:
        cursor = Cursor.model_validate(decode_value(value))
    except (BadCursor, ValidationError):
        raise bad_cursor() from None
    if cursor.sort != sort:
        raise bad_cursor(f"This cursor pages through results sorted by {cursor.sort!r}; pass the same sort (and filters) as the first page.")
    if len(cursor.after) != sort_fields or not _fits(sort, cursor.after) or not _plausible_pit(cursor.pit):
        raise bad_cursor()
    if cursor.filters is None:
        return cursor
    if differ := sorted(name for name in cursor.filters.keys() | filters.keys() if cursor.filters.get(name) != filters.get(name)):
        raise bad_cursor(
            f"This cursor pages through the results of other filters: {', '.join(differ)} differ from the first page's. "
            "Pass the same filters (and sort) as the first page, or search again without a cursor."
        )
    return cursor
