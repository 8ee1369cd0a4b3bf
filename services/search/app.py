"""The search app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.search import routes
from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.config import SearchSettings
from services.search.deps import INDEX, READER, SEARCH_SETTINGS
from services.search.handlers import handlers
from shared.web import ServiceInfo, build_app
from shared.web.resources import BUS, ELASTIC, MONGO, blobs_ctx, bus_ctx, elastic_ctx


async def search_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SEARCH_SETTINGS]
    index = ImageIndex(app[ELASTIC], settings.es_index_prefix, shards=settings.es_shards, replicas=settings.es_replicas)
    await index.ensure()
    app[INDEX] = index
    app[READER] = ImageReader(app[MONGO])
    # Consume only once the index exists: nothing is acked before it can be written.
    await app[BUS].consume(handlers(index))
    yield


async def init_app(settings: SearchSettings) -> web.Application:
    app = build_app(settings, ServiceInfo(title="Image Corpus — search"), routes.endpoints())
    app[SEARCH_SETTINGS] = settings
    app.cleanup_ctx.extend([elastic_ctx, blobs_ctx, bus_ctx, search_ctx])
    return app
