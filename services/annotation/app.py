"""The annotation app factory."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

from aiohttp import web

from services.annotation import routes
from services.annotation.config import AnnotationSettings
from shared.auth.bootstrap import create_first_admin
from shared.web import ServiceInfo, build_app
from shared.web.resources import MONGO, SETTINGS, bus_ctx


async def bootstrap_admin_ctx(app: web.Application) -> AsyncIterator[None]:
    """On a fresh install without CORPUS_ADMIN_KEY, make the first admin and show its key once."""
    if app[SETTINGS].admin_key is None:
        key = await create_first_admin(app[MONGO])
        if key is not None:
            print(f"\n  Bootstrap admin API key (shown once, store it now): {key}\n", file=sys.stdout, flush=True)
    yield


async def init_app(settings: AnnotationSettings) -> web.Application:
    app = build_app(settings, ServiceInfo(title="Image Corpus — annotation"), routes.endpoints())
    app.cleanup_ctx.extend([bus_ctx, bootstrap_admin_ctx])
    return app
