"""The skeleton every service's app factory starts from."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp_cors
from aiohttp import web

from shared.auth import require
from shared.metrics import render_latest
from shared.settings import CorpusSettings
from shared.web.endpoints import Endpoint
from shared.web.health import DEGRADED_CHECKS, READINESS_CHECKS, healthz, readyz
from shared.web.middlewares import SERVICE_NAME, observe
from shared.web.openapi import build_openapi
from shared.web.resources import SETTINGS, auth_ctx, mongo_ctx

OPENAPI = web.AppKey("openapi", dict)


# aiohttp's parser refuses a request line over 8 KiB; a search with a few hundred label filters
# is longer than that. What it still refuses (over 64 KiB) gets its plain-text 400.
HTTP_PARSER_LIMITS = {"max_line_size": 64 * 1024, "max_field_size": 16 * 1024}


@dataclass(frozen=True)
class ServiceInfo:
    """What the OpenAPI document and the request size cap need to know of a service."""

    title: str
    version: str = "1.0.0"
    client_max_size: int = 1024**2


async def metrics(request: web.Request) -> web.Response:
    body, content_type = render_latest()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


# What a page in another origin may send and read (the admin page calls ingest and annotation from search's).
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Correlation-Id")
CORS_RESPONSE_HEADERS = ("ETag", "Location", "Retry-After", "Idempotent-Replayed", "X-Correlation-Id")


def allow_browsers(app: web.Application, origins: list[str]) -> None:
    """CORS for every route registered so far, for these origins only (preflights answered by aiohttp-cors)."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_headers=CORS_REQUEST_HEADERS, expose_headers=CORS_RESPONSE_HEADERS, allow_methods="*", max_age=600
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in list(app.router.routes()):
        cors.add(route)


def build_app(settings: CorpusSettings, info: ServiceInfo, endpoints: list[Endpoint]) -> web.Application:
    app = web.Application(middlewares=[observe], client_max_size=info.client_max_size, handler_args=HTTP_PARSER_LIMITS)
    app[SETTINGS] = settings
    app[SERVICE_NAME] = settings.service_name
    app[READINESS_CHECKS] = {}
    app[DEGRADED_CHECKS] = {}
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    for ep in endpoints:
        app.router.add_route(ep.method, ep.path, require(ep.permission, ep.handler) if ep.permission else ep.handler)
    allow_browsers(app, settings.cors_origins)
    app[OPENAPI] = build_openapi(info.title, info.version, endpoints)
    # Every service needs MongoDB, if only to check API keys; services append their other stores.
    app.cleanup_ctx.extend([mongo_ctx, auth_ctx])
    return app
