"""Thin HTTP handlers for search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from services.search.deps import INDEX, READER, SEARCH_SETTINGS
from services.search.domain.query import build_search, encode_cursor, parse_params
from services.search.models import ImageDetail, SearchPage
from shared.clients.blobs import original_key
from shared.problems import Problem, problem_type
from shared.web.resources import BLOBS


async def search(request: web.Request) -> web.Response:
    settings = request.app[SEARCH_SETTINGS]
    params = parse_params(
        dict(request.query), default_limit=settings.page_size_default, max_limit=settings.page_size_max
    )
    result = await request.app[INDEX].search(build_search(params))
    hits = result["hits"]["hits"]
    next_cursor = encode_cursor(hits[-1]["sort"]) if len(hits) == params.limit else None
    page = SearchPage(total=result["hits"]["total"]["value"], items=[hit["_source"] for hit in hits], next=next_cursor)
    return web.json_response(page.model_dump(mode="json"))


async def get_image(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    raw = await request.app[READER].get(image_id)
    if raw is None:
        raise Problem(404, "Not Found", f"No image has id {image_id!r}.", type_=problem_type("not-found"))
    settings = request.app[SEARCH_SETTINGS]
    detail = ImageDetail.model_validate(
        {
            **raw,
            "id": raw["_id"],
            "original_url": request.app[BLOBS].presigned_url(original_key(raw["sha256"])),
            "urls_expire_at": datetime.now(UTC) + timedelta(seconds=settings.presign_ttl_seconds),
        }
    )
    return web.json_response(detail.model_dump(mode="json"))
