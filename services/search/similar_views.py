"""Similarity: images near a stored image, or near an uploaded one; near-duplicate clusters."""

from __future__ import annotations

from aiohttp import web

from services.search.deps import HASHER, INDEX, READER, SEARCH_SETTINGS, SIMILARITY
from services.search.domain.errors import bad_cursor, bad_parameter
from services.search.domain.hash_index import parse_hash
from services.search.domain.hashing import NotAnImage
from services.search.domain.params import single_values
from services.search.domain.similar_params import SimilarParams, parse_similar
from services.search.models import ClusterPage, NearDuplicateCluster, SimilarImage, SimilarPage
from services.search.views import index_errors
from shared.cursors import BadCursor, decode_cursor, encode_cursor
from shared.problems import Problem, problem_type
from shared.web.bodies import MALFORMED_MULTIPART, malformed_multipart
from shared.web.query import refuse_unknown

CLUSTER_PAGE = 50
CLUSTER_MEMBERS = 100


def _params(request: web.Request) -> SimilarParams:
    settings = request.app[SEARCH_SETTINGS]
    return parse_similar(
        single_values(request.query),
        default_radius=settings.similar_radius_default,
        max_radius=settings.similar_radius_max,
        max_k=settings.similar_limit_max,
    )


def _answer(request: web.Request, params: SimilarParams, value: int, exclude: str | None) -> web.Response:
    similarity = request.app[SIMILARITY]
    if not similarity.ready.is_set():
        raise Problem(503, "Service Unavailable", "The similarity index is still loading; retry in a few seconds.", headers={"Retry-After": "5"})
    found = similarity.hashes.query(value, params.kind, radius=params.radius, k=params.k, exclude=exclude)
    cap = request.app[SEARCH_SETTINGS].similar_limit_max
    page = SimilarPage(
        hash=params.kind,
        query_hash=f"{value:016x}",
        radius=params.radius,
        k=params.k,
        total=len(found),
        items=[SimilarImage.model_construct(image_id=image_id, distance=distance) for image_id, distance in found[:cap]],
        truncated=len(found) > cap,
    )
    return web.Response(text=page.model_dump_json(), content_type="application/json")


async def similar_to_image(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    params = _params(request)
    value = request.app[SIMILARITY].hashes.hash_of(image_id, params.kind)
    if value is None:
        image = await request.app[READER].get(image_id)
        if image is None:
            raise Problem(404, "Not Found", f"No image has id {image_id!r}.", type_=problem_type("not-found"))
        value = parse_hash(image.get(params.kind))
        if value is None:
            raise Problem(422, "Unprocessable Content", f"Image {image_id} has no 64-bit {params.kind} to compare.")
    return _answer(request, params, value, exclude=image_id)


async def _uploaded_bytes(request: web.Request) -> bytes:
    if request.content_type.startswith("multipart/"):
        try:
            form = await request.post()
        except MALFORMED_MULTIPART as exc:
            raise malformed_multipart(exc, "Send the image as the field 'file'.") from None
        field = form.get("file")
        if field is None or not hasattr(field, "file"):
            raise bad_parameter("Send the query image as the multipart field 'file' (or as the raw request body).")
        return field.file.read()
    return await request.read()


async def similar_to_upload(request: web.Request) -> web.Response:
    params = _params(request)
    data = await _uploaded_bytes(request)
    if not data:
        raise bad_parameter("The request carries no image: send its bytes as the body or the multipart field 'file'.")
    try:
        hashes = await request.app[HASHER].hashes(data)
    except NotAnImage as exc:
        raise Problem(422, "Unprocessable Content", f"The uploaded bytes are not a decodable image ({exc}).", type_=problem_type("not-an-image")) from None
    value = parse_hash(hashes[params.kind])
    assert value is not None
    return _answer(request, params, value, exclude=None)


def _after_key(cursor: str | None) -> dict | None:
    """The composite aggregation's ``after`` from a cursor, checked: exactly the key this service pages by
    (``{"original": "<image id>"}``), so a made-up cursor is a 400, not a failed aggregation."""
    if not cursor:
        return None
    try:
        after = decode_cursor(cursor)
    except BadCursor:
        raise bad_cursor() from None
    if not isinstance(after, dict) or set(after) != {"original"} or not isinstance(after["original"], str):
        raise bad_cursor()
    return after


async def near_duplicate_clusters(request: web.Request) -> web.Response:
    query = single_values(request.query)
    refuse_unknown(query, {"cursor"})
    composite: dict = {"size": CLUSTER_PAGE, "sources": [{"original": {"terms": {"field": "near_duplicate_of"}}}]}
    if after := _after_key(query.get("cursor")):
        composite["after"] = after
    body = {
        "size": 0,
        "query": {"term": {"is_near_duplicate": True}},
        "aggs": {
            "clusters": {
                "composite": composite,
                "aggs": {"members": {"terms": {"field": "image_id", "size": CLUSTER_MEMBERS, "order": {"_key": "asc"}}}},
            }
        },
    }
    async with index_errors(request.app[INDEX], cursor=after is not None):
        result = await request.app[INDEX].search(body)
    agg = result["aggregations"]["clusters"]
    items = [
        NearDuplicateCluster(
            original=bucket["key"]["original"],
            duplicates=[member["key"] for member in bucket["members"]["buckets"]],
            size=bucket["doc_count"] + 1,
        )
        for bucket in agg["buckets"]
    ]
    next_cursor = None
    if len(items) == CLUSTER_PAGE and agg.get("after_key"):
        next_cursor = encode_cursor(agg["after_key"])
    return web.json_response(ClusterPage(items=items, next=next_cursor).model_dump(mode="json"))
