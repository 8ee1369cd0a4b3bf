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


def aggregations(facets: list[str], size: int) -> dict[str, Any]:
    aggs: dict[str, Any] = {}
    for facet in facets:
        if facet in TERMS_FACETS:
            aggs[facet] = {"terms": {"field": TERMS_FACETS[facet], "size": size}}
        elif facet == "resolution":
            aggs[facet] = {"range": {"field": "megapixels", "ranges": RESOLUTION_BUCKETS}}
        elif facet == "created":
            aggs[facet] = {
                "date_histogram": {"field": "created_at", "calendar_interval": "month", "format": "yyyy-MM", "min_doc_count": 1}
            }
    return aggs


def facet_buckets(aggs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``{"labels": [{"value": "person", "count": 61}, ...], ...}``"""
    result: dict[str, list[dict[str, Any]]] = {}
    for name, agg in aggs.items():
        result[name] = [
            {"value": bucket.get("key_as_string", bucket["key"]), "count": bucket["doc_count"]}
            for bucket in agg["buckets"]
        ]
    return result
