"""The annotation app factory."""

from __future__ import annotations

from aiohttp import web

from services.annotation import routes
from services.annotation.config import AnnotationSettings
from shared.web import ServiceInfo, build_app
from shared.web.resources import bus_ctx, mongo_ctx


async def init_app(settings: AnnotationSettings) -> web.Application:
    app = build_app(settings, ServiceInfo(title="Image Corpus — annotation"), routes.endpoints())
    app.cleanup_ctx.extend([mongo_ctx, bus_ctx])
    return app
