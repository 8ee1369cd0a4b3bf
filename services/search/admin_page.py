"""The admin web page: a static page and script, served here, that read the three services' JSON APIs.

The page carries no data and needs no key to load; the operator gives an
admin's API key, which stays in the browser tab and goes only to the
services' APIs (which check it, as for any client). Ingest and annotation
allow this origin through CORS (``CORPUS_CORS_ORIGINS``).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.search.deps import SEARCH_SETTINGS

STATIC = Path(__file__).parent / "static"
# The page runs only its own script and talks only to the services (images come from MinIO's signed URLs).
SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src *; img-src * data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def page(request: web.Request) -> web.Response:
    return web.Response(body=(STATIC / "admin.html").read_bytes(), content_type="text/html", charset="utf-8", headers=SECURITY)


async def script(request: web.Request) -> web.Response:
    return web.Response(body=(STATIC / "app.js").read_bytes(), content_type="text/javascript", charset="utf-8", headers=SECURITY)


async def config(request: web.Request) -> web.Response:
    settings = request.app[SEARCH_SETTINGS]
    return web.json_response({"ingest_url": settings.admin_ingest_url, "annotation_url": settings.admin_annotation_url}, headers=SECURITY)


def add_admin_page(app: web.Application) -> None:
    app.router.add_get("/admin", page)
    app.router.add_get("/admin/app.js", script)
    app.router.add_get("/admin/config.json", config)
