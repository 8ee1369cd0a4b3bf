"""Search parameters → an Elasticsearch request body.

Free text goes through ``simple_query_string`` on a fixed field list: its
syntax errors never fail a request and it cannot reach other fields. Filters
are ``filter`` clauses (cached, unscored); facets are aggregations on request.
"""

from __future__ import annotations

from typing import Any

from services.search.domain.facets import aggregations
from services.search.domain.params import SearchParams

TEXT_FIELDS = ["text", "tags^2", "labels^2"]
HIDDEN_FIELDS = ["text"]
TIE_BREAKER = {"image_id": {"order": "asc"}}
# list parameter → (field, clause): any of the values, all of them, or none.
LIST_FILTERS = {
    "labels": ("labels", "any"),
    "labels_all": ("labels", "all"),
    "labels_none": ("labels", "none"),
    "tags": ("tags", "any"),
    "formats": ("format", "any"),
    "sources": ("source", "any"),
    "uploaders": ("uploader", "any"),
    "annotation_types": ("annotation_types", "any"),
}


def sort_clause(sort: str) -> list[dict[str, Any]]:
    """The stable order pages are cut in; the image id breaks ties."""
    if sort == "relevance":
        return [{"_score": {"order": "desc"}}, TIE_BREAKER]
    field = sort.lstrip("-")
    return [{field: {"order": "desc" if sort.startswith("-") else "asc"}}, TIE_BREAKER]


def _filters(params: SearchParams) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    must: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    for name, values in params.lists.items():
        field, mode = LIST_FILTERS[name]
        if mode == "any":
            must.append({"terms": {field: values}})
        elif mode == "all":
            must += [{"term": {field: value}} for value in values]
        else:
            must_not.append({"terms": {field: values}})
    for field, (low, high) in params.ranges.items():
        bounds = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in (("gte", low), ("lte", high)) if v is not None}
        must.append({"range": {field: bounds}})
    if "has_annotations" in params.flags:
        clause = {"range": {"annotation_count": {"gt": 0}}}
        (must if params.flags["has_annotations"] else must_not).append(clause)
    if "near_duplicate" in params.flags:
        must.append({"term": {"is_near_duplicate": params.flags["near_duplicate"]}})
    return must, must_not


def build_query(params: SearchParams) -> dict[str, Any]:
    must, must_not = _filters(params)
    if not params.q and not must and not must_not:
        return {"match_all": {}}
    query: dict[str, Any] = {"bool": {"filter": must}}
    if must_not:
        query["bool"]["must_not"] = must_not
    if params.q:
        query["bool"]["must"] = [
            {"simple_query_string": {"query": params.q, "fields": TEXT_FIELDS, "default_operator": "and"}}
        ]
    return query


def _facet_filters(params: SearchParams) -> dict[str, dict[str, Any]]:
    """For disjunctive facet counts: facet → its own "any of" filter clause, for the facets asked for whose
    filter is given (labels, tags, formats, sources). These filter the hits as a ``post_filter`` instead."""
    if params.facet_counts != "disjunctive":
        return {}
    return {
        facet: {"terms": {LIST_FILTERS[facet][0]: params.lists[facet]}}
        for facet in params.facets
        if facet in params.lists and LIST_FILTERS[facet][1] == "any"
    }


def build_search(
    params: SearchParams, *, after: list[Any] | None = None, total_hits_cap: int | bool = True, facet_size: int = 20
) -> dict[str, Any]:
    """The request body of one page. The first page with disjunctive facet counts moves the counted facets'
    own filters to a ``post_filter``: the same hits, and the aggregations see past them (each its own)."""
    post_filters = _facet_filters(params) if params.facets and after is None else {}
    query_params = params.model_copy(update={"lists": {k: v for k, v in params.lists.items() if k not in post_filters}})
    body: dict[str, Any] = {
        "query": build_query(query_params),
        "sort": sort_clause(params.sort),
        "size": params.limit,
        "track_total_hits": total_hits_cap,
        # The whole stored source: Elasticsearch copies it as it is, where an exclude list makes it
        # parse and rewrite every hit (0.5 ms a page here); the service drops HIDDEN_FIELDS itself.
    }
    if after is not None:
        body["search_after"] = after
    if post_filters:
        body["post_filter"] = {"bool": {"filter": list(post_filters.values())}}
    if params.facets and after is None:
        body["aggs"] = aggregations(params.facets, facet_size, post_filters)
    return body
