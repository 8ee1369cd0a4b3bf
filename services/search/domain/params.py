"""Search parameters: parsed and checked from the query string, or a 400 that says why."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel

from services.search.domain.errors import bad_parameter
from shared.naming import split_csv, split_csv_names
from shared.web.query import refuse_unknown
from shared.web.query import single_values as query_values

INT64 = (-(2**63), 2**63 - 1)

SORTS = {
    "-created_at", "created_at", "-captured_at", "captured_at", "-megapixels", "megapixels",
    "-bytes", "bytes", "-width", "width", "-height", "height", "relevance",
}
FACETS = ("labels", "tags", "formats", "sources", "resolution", "created")
# What a facet counts: the results (every filter applied), or, for a facet whose own "any of" filter is given
# (labels, tags, formats, sources), the results of every *other* filter: the counts a multi-select list shows.
FACET_COUNTS = ("results", "disjunctive")
# name → (field, kind): the range filters, each as min_<name> / max_<name>.
RANGES = {
    "width": ("width", "int"),
    "height": ("height", "int"),
    "megapixels": ("megapixels", "float"),
    "aspect": ("aspect_ratio", "float"),
    "bytes": ("bytes", "int"),
}
DATE_RANGES = {"captured": "captured_at", "created": "created_at"}
LISTS = ("labels", "labels_all", "labels_none", "tags", "formats", "sources", "uploaders", "annotation_types")
FLAGS = ("has_annotations", "near_duplicate")
KNOWN = {
    "q", "limit", "cursor", "sort", "facets", "facet_counts", *LISTS, *FLAGS,
    *(f"{side}_{name}" for name in RANGES for side in ("min", "max")),
    *(f"{name}_{side}" for name in DATE_RANGES for side in ("from", "to")),
}


class SearchParams(BaseModel):
    q: str | None = None
    limit: int = 20
    cursor: str | None = None
    sort: str = "-created_at"
    facets: list[str] = []
    facet_counts: str = "results"
    lists: dict[str, list[str]] = {}  # labels, labels_all, ... → values (normalised)
    flags: dict[str, bool] = {}
    ranges: dict[str, tuple[Any, Any]] = {}  # ES field → (gte, lte), either may be None


def _number(name: str, raw: str, kind: str) -> float | int:
    """An integer within 64 bits (what Elasticsearch's numbers hold) or a finite float: ``inf`` and ``nan``
    would make a bound that Elasticsearch silently drops, matching everything."""
    try:
        value = int(raw) if kind == "int" else float(raw)
    except ValueError:
        raise bad_parameter(f"{name} must be a{'n integer' if kind == 'int' else ' number'}, not {raw!r}.") from None
    if kind == "int" and not INT64[0] <= value <= INT64[1]:
        raise bad_parameter(f"{name} must be an integer between {INT64[0]} and {INT64[1]}, not {raw!r}.")
    if kind != "int" and not math.isfinite(value):
        raise bad_parameter(f"{name} must be a finite number, not {raw!r}.")
    return value


def _date(name: str, raw: str, *, upper: bool = False) -> datetime:
    """An ISO 8601 date or time (UTC when no zone). A date alone as an upper bound (``*_to``) means the end of
    that day: the ranges are inclusive, so ``created_from=D&created_to=D`` is the whole day D."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        day = None
    if day is not None:
        return datetime.combine(day, time.max if upper else time.min, tzinfo=UTC)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_parameter(f"{name} must be an ISO 8601 date or time such as 2024-05-01, not {raw!r}.") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _flag(name: str, raw: str) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise bad_parameter(f"{name} must be true or false, not {raw!r}.")


def _checked_range(name: str, low: Any, high: Any) -> tuple[Any, Any]:
    if low is not None and high is not None and low > high:
        raise bad_parameter(f"The {name} range is inverted: its lower bound {low} is above its upper bound {high}.", "inverted-range")
    return low, high


def _lists(query: dict[str, str]) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    for name in LISTS:
        if query.get(name):
            raw = query[name]
            if name in ("labels", "labels_all", "labels_none", "tags", "annotation_types"):
                lists[name] = split_csv_names(raw)
            elif name == "formats":
                lists[name] = [value.lower() for value in split_csv(raw)]
            else:
                lists[name] = split_csv(raw)
    return lists


def _ranges(query: dict[str, str]) -> dict[str, tuple[Any, Any]]:
    ranges: dict[str, tuple[Any, Any]] = {}
    for name, (field, kind) in RANGES.items():
        low, high = (query.get(f"{side}_{name}") for side in ("min", "max"))
        if low is not None or high is not None:
            ranges[field] = _checked_range(
                name,
                _number(f"min_{name}", low, kind) if low is not None else None,
                _number(f"max_{name}", high, kind) if high is not None else None,
            )
    for name, field in DATE_RANGES.items():
        low, high = (query.get(f"{name}_{side}") for side in ("from", "to"))
        if low is not None or high is not None:
            ranges[field] = _checked_range(
                name,
                _date(f"{name}_from", low) if low is not None else None,
                _date(f"{name}_to", high, upper=True) if high is not None else None,
            )
    return ranges


# ES field of a range → how the caller names it.
RANGE_PARAMETERS = {
    **{field: f"min_{name}/max_{name}" for name, (field, _) in RANGES.items()},
    **{field: f"{name}_from/{name}_to" for name, field in DATE_RANGES.items()},
}


def _bound(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def filters_of(params: SearchParams) -> dict[str, Any]:
    """What selects the results, normalised (lists as sorted sets, times in UTC), as JSON values by the names
    the caller gives them: two requests with equal filters select the same images."""
    filters: dict[str, Any] = {"q": params.q} if params.q else {}
    filters |= {name: sorted(set(values)) for name, values in params.lists.items()}
    filters |= params.flags
    filters |= {RANGE_PARAMETERS[field]: [_bound(low), _bound(high)] for field, (low, high) in params.ranges.items()}
    return filters


def single_values(query: Mapping[str, str]) -> dict[str, str]:
    """The query string as one value per name (a name given twice is refused); lists are one parameter with
    comma-separated values (``labels=zebra,giraffe``)."""
    return query_values(query, LISTS)


def parse_params(query: dict[str, str], *, default_limit: int, max_limit: int) -> SearchParams:
    refuse_unknown(query, KNOWN)
    limit_raw = query.get("limit")
    try:
        if limit_raw is not None and not (limit_raw.isascii() and limit_raw.isdigit()):
            raise ValueError(limit_raw)  # int() takes '٣' and other digits: only 0-9 here, as everywhere else
        limit = int(limit_raw) if limit_raw is not None else default_limit
    except ValueError:
        raise bad_parameter(f"limit must be an integer, not {limit_raw!r}.") from None
    if not 1 <= limit <= max_limit:
        raise bad_parameter(f"limit must be between 1 and {max_limit}, not {limit}.", "bad-limit")
    sort = query.get("sort") or "-created_at"
    if sort not in SORTS:
        raise bad_parameter(f"sort must be one of {', '.join(sorted(SORTS))}, not {sort!r}.")
    q = (query.get("q") or "").strip() or None
    if sort == "relevance" and not q:
        raise bad_parameter("sort=relevance needs a q to rank by.")
    facets = split_csv(query.get("facets") or "")
    if bad := [f for f in facets if f not in FACETS]:
        raise bad_parameter(f"Unknown facet(s) {', '.join(bad)}; the facets are {', '.join(FACETS)}.")
    facet_counts = query.get("facet_counts") or "results"
    if facet_counts not in FACET_COUNTS:
        raise bad_parameter(f"facet_counts must be one of {', '.join(FACET_COUNTS)}, not {facet_counts!r}.")
    flags = {name: _flag(name, query[name]) for name in FLAGS if query.get(name)}
    return SearchParams(
        q=q, limit=limit, cursor=query.get("cursor") or None, sort=sort, facets=facets, facet_counts=facet_counts,
        lists=_lists(query), flags=flags, ranges=_ranges(query),
    )
