"""Thin HTTP handlers for searching and fetching images."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from elasticsearch import ApiError, BadRequestError, NotFoundError

from services.search.adapters.index import ImageIndex
from services.search.adapters.snapshots import origin_of
from services.search.deps import INDEX, READER, SEARCH_SETTINGS, SNAPSHOTS
from services.search.domain.cursor import Cursor, decode_cursor, encode_cursor, filter_fingerprints
from services.search.domain.errors import bad_cursor, cursor_expired, index_missing
from services.search.domain.facets import facet_buckets
from services.search.domain.params import parse_params, single_values
from services.search.domain.query import HIDDEN_FIELDS, build_search, sort_clause
from services.search.models import FacetBucket, ImageDetail, SearchPage
from shared.auth import PRINCIPAL
from shared.clients.blobs import original_key, thumbnail_key
from shared.problems import Problem, problem_type
from shared.web.resources import BLOBS


def _error_types(exc: ApiError) -> set[str]:
    """Every error type in an Elasticsearch error body: the top one, its root causes, what caused it and each
    failed shard's reason. The exception's own text names only the top one (a 404 of an expired point in
    time reads 'search_phase_execution_exception: all shards failed'), so the body is what tells them apart."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    if not isinstance(error, dict):
        return set()
    causes = [error, *error.get("root_cause", []), error.get("caused_by") or {}]
    causes += [shard.get("reason") or {} for shard in error.get("failed_shards", [])]
    return {cause.get("type") for cause in causes if isinstance(cause, dict) and cause.get("type")}


# What Elasticsearch answers a snapshot read whose index is gone: 503 no_shard_available_action_exception (a
# reindex dropped the index), or index_not_found_exception. The first is also what a shard that is down
# answers, so the index named in the failure is looked up before the answer is 410.
INDEX_GONE = {"no_shard_available_action_exception", "index_not_found_exception"}


def _failed_indices(exc: ApiError, *, but: str) -> list[str]:
    """The indices an error names, ``but`` (the alias: a lost index, not a gone snapshot) left out."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    shards = error.get("failed_shards", []) if isinstance(error, dict) else []
    indices = [error.get("index")] if isinstance(error, dict) else []
    indices += [shard.get("index") for shard in shards if isinstance(shard, dict)]
    return sorted({name for name in indices if isinstance(name, str) and name and name != but})


async def snapshot_gone(index: ImageIndex, exc: ApiError) -> bool:
    """Whether ``exc`` says the snapshot (point in time) a search read is gone: expired, closed, or its index
    dropped. Not when an index it read exists but a shard of it is down: that is an outage."""
    types = _error_types(exc)
    if "search_context_missing_exception" in types:
        return True
    return bool(types & INDEX_GONE and (gone := _failed_indices(exc, but=index.alias)) and await index.missing(gone))


@contextlib.asynccontextmanager
async def index_errors(index: ImageIndex, *, cursor: bool = False, snapshot: bool = False) -> AsyncIterator[None]:
    """Elasticsearch's errors a caller can act on, as problems: a cursor whose snapshot is gone (410: it
    expired, was closed, or, reading a ``snapshot``, its index was dropped) or a lost index (503); with a
    ``cursor``, a 400 is the cursor's doing (the same query without one passed on the first page), so it is
    a bad cursor, not a failed search. A shard that is down while its index exists stays what it is: an
    outage (503 with Retry-After)."""
    try:
        yield
    except ApiError as exc:
        if "search_context_missing_exception" in _error_types(exc) or (snapshot and await snapshot_gone(index, exc)):
            raise cursor_expired() from None
        if isinstance(exc, NotFoundError):
            raise index_missing() from None
        if cursor and isinstance(exc, BadRequestError):
            raise bad_cursor() from None
        raise


async def _first_page(index: ImageIndex, body: dict[str, Any]) -> dict[str, Any]:
    """Hits and each facet as concurrent requests: Elasticsearch runs them on parallel search
    threads (one aggregation request is single-threaded per shard), and facet-only requests
    are served from the shard request cache when repeated."""
    aggs = body.pop("aggs", None)
    if not aggs:
        return await index.search(body)
    results = await asyncio.gather(index.search(body), *(index.aggregate(body["query"], {name: agg}) for name, agg in aggs.items()))
    page = results[0]
    page["aggregations"] = {name: part[name] for part in results[1:] for name in part}
    return page


async def search(request: web.Request) -> web.Response:
    settings = request.app[SEARCH_SETTINGS]
    index = request.app[INDEX]
    params = parse_params(single_values(request.query), default_limit=settings.page_size_default, max_limit=settings.page_size_max)
    filters = filter_fingerprints(params)
    cursor = None
    if params.cursor:
        cursor = decode_cursor(params.cursor, sort=params.sort, sort_fields=len(sort_clause(params.sort)), filters=filters)
    body = build_search(
        params, after=cursor.after if cursor else None, total_hits_cap=settings.total_hits_cap, facet_size=settings.facet_size
    )
    async with index_errors(index, cursor=cursor is not None, snapshot=cursor is not None):
        pit = None
        if cursor:
            pit, result = await _page_after(request, cursor, params.cursor, body)
        else:
            result = await _first_page(index, body)
        hits = result["hits"]["hits"]
        next_cursor = None
        if len(hits) == params.limit:
            next_cursor = encode_cursor(Cursor(sort=params.sort, after=hits[-1]["sort"], pit=pit, filters=filters))
        elif pit is not None:
            # The last page: nobody asks for the snapshot again. Left open, each paging session (an export by
            # search, too) held one for the whole keep-alive: 290 open at once in a tester's half hour.
            await request.app[SNAPSHOTS].close(pit)
    total = result["hits"]["total"]
    # The items are Elasticsearch's own documents: built without validation, written by pydantic's JSON serialiser.
    page = SearchPage.model_construct(
        total=total["value"],
        total_relation=total["relation"],
        items=[_shown(hit["_source"]) for hit in hits],
        next=next_cursor,
        facets=_facets(result["aggregations"]) if "aggregations" in result else None,
    )
    body = page.model_dump_json(exclude={"facets"} if page.facets is None else set())
    return web.Response(text=body, content_type="application/json")


async def _page_after(request: web.Request, cursor: Cursor, token: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A page after the first, read from one snapshot (a point in time) and that snapshot's id.

    The first page opened none (most searches never ask for a second page, and it pays no extra round
    trip), so the request for page 2 takes the snapshot its page-1 cursor opened before, if a replay of
    it did, or opens one (``adapters/snapshots.py``)."""
    index, snapshots = request.app[INDEX], request.app[SNAPSHOTS]
    if cursor.pit:
        result = await index.search(body, pit=cursor.pit, keep_alive=index.keep_alive)
        return result.get("pit_id", cursor.pit), result
    caller, origin = _caller(request), origin_of(token)
    pit = await snapshots.for_cursor(caller, origin)
    try:
        result = await index.search(body, pit=pit, keep_alive=index.keep_alive)
    except ApiError as exc:
        if not await snapshot_gone(index, exc):
            raise
        # The recorded snapshot is gone (a reindex's old index dropped, Elasticsearch restarted); a page-1
        # cursor does not expire: it gets a new one.
        await snapshots.close(pit)
        pit = await snapshots.open(caller, origin)
        result = await index.search(body, pit=pit, keep_alive=index.keep_alive)
    return result.get("pit_id", pit), result


def _caller(request: web.Request) -> str:
    """Whose snapshots these are: the key's user; anonymous readers (when allowed) by their address."""
    principal = request[PRINCIPAL]
    return f"anonymous@{request.remote}" if principal.is_anonymous else principal.user_id


def _shown(source: dict[str, Any]) -> dict[str, Any]:
    for field in HIDDEN_FIELDS:
        source.pop(field, None)
    return source


def _facets(aggregations: dict[str, Any]) -> dict[str, list[FacetBucket]]:
    return {name: [FacetBucket(**bucket) for bucket in buckets] for name, buckets in facet_buckets(aggregations).items()}


def _counts(summary: dict[str, Any] | None) -> dict[str, Any]:
    summary = summary or {}
    return {
        "labels": summary.get("labels") or {},
        "annotation_types": summary.get("types") or {},
        "annotation_count": summary.get("count", 0),
    }


async def get_image(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    reader = request.app[READER]
    raw = await reader.get(image_id)
    if raw is None:
        raise Problem(404, "Not Found", f"No image has id {image_id!r}.", type_=problem_type("not-found"))
    settings = request.app[SEARCH_SETTINGS]
    blobs = request.app[BLOBS]
    annotations = await reader.annotations(image_id, settings.annotations_in_detail)
    detail = ImageDetail.model_validate(
        {
            **{k: v for k, v in raw.items() if k != "_id"},
            **_counts(await reader.summary(image_id)),
            "id": raw["_id"],
            "annotations": [{"id": a.pop("_id"), **a} for a in annotations],  # AnnotationOut drops what it does not show
            "original_url": blobs.presigned_url(original_key(raw["sha256"])),
            "thumbnail_url": blobs.presigned_url(thumbnail_key(raw["sha256"])) if raw.get("thumbnail") else None,
            "urls_expire_at": datetime.now(UTC) + timedelta(seconds=settings.presign_ttl_seconds),
        }
    )
    return web.json_response(detail.model_dump(mode="json", fallback=str))
