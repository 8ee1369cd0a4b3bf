"""Facets: the aggregations asked for, and their buckets in the response's shape."""

from __future__ import annotations

from typing import Any

TERMS_FACETS = {"labels": "labels", "tags": "tags", "formats": "format", "sources": "source"}
# Megapixel buckets: thumbnails, web images, phone photos, camera photos, very large.
RESOLUTION_BUCKETS = [
    {"key": "<0.5MP", "to": 0.5},
    {"key": "0.5-2MP", "from": 0.5, "to": 2},
    {"key": "2-8MP", "from": 2, "to": 8},
    {"key": "8-20MP", "from": 8, "to": 20},
    {"key": ">=20MP", "from": 20},
]


def aggregations(facets: list[str], size: int, post_filters: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The facets' aggregations. ``post_filters`` (facet → its own filter clause, applied to the hits as a
    ``post_filter``, not in the query) makes counts disjunctive: each facet counts within every post filter
    but its own."""
    aggs: dict[str, Any] = {}
    for facet in facets:
        agg = _aggregation(facet, size)
        others = [clause for name, clause in (post_filters or {}).items() if name != facet]
        aggs[facet] = {"filter": {"bool": {"filter": others}}, "aggs": {facet: agg}} if others else agg
    return aggs


def _aggregation(facet: str, size: int) -> dict[str, Any]:
    if facet in TERMS_FACETS:
        return {"terms": {"field": TERMS_FACETS[facet], "size": size}}
    if facet == "resolution":
        return {"range": {"field": "megapixels", "ranges": RESOLUTION_BUCKETS}}
    assert facet == "created", facet
    return {"date_histogram": {"field": "created_at", "calendar_interval": "month", "format": "yyyy-MM", "min_doc_count": 1}}


def facet_buckets(aggs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``{"labels": [{"value": "person", "count": 61}, ...], ...}``"""
    result: dict[str, list[dict[str, Any]]] = {}
    for name, agg in aggs.items():
        agg = agg.get(name, agg)  # a facet counted within the other facets' filters is nested in theirs
        result[name] = [
            {"value": bucket.get("key_as_string", bucket["key"]), "count": bucket["doc_count"]}
            for bucket in agg["buckets"]
        ]
    return result
