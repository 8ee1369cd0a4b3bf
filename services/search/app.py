"""The search app factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from services.search import routes
from services.search.admin_page import add_admin_page
from services.search.adapters.hasher import Hasher
from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.config import SearchSettings
from services.search.adapters.snapshots import Snapshots
from services.search.deps import HASHER, INDEX, JOBS, PROJECTOR, READER, SEARCH_SETTINGS, SIMILARITY, SNAPSHOTS
from services.search.handlers import handlers
from services.search.jobs import JobRegistry
from services.search.maintenance import RetiredSweeper
from services.search.projection import Coalescer, Projector
from services.search.similarity import Similarity
from shared.web import READINESS_CHECKS, ServiceInfo, build_app
from shared.web.resources import BUS, ELASTIC, MONGO, blob_signer_ctx, bus_ctx, elastic_ctx


async def search_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SEARCH_SETTINGS]
    index = ImageIndex(
        app[ELASTIC], settings.es_index_prefix, shards=settings.es_shards, replicas=settings.es_replicas, keep_alive=settings.cursor_keep_alive
    )
    await index.ensure()
    similarity = Similarity()
    projector = Projector(ImageReader(app[MONGO]), index, similarity)
    app[INDEX], app[READER], app[PROJECTOR], app[SIMILARITY] = index, projector.reader, projector, similarity
    app[HASHER] = Hasher(settings.hash_workers)
    app[JOBS] = JobRegistry(app[MONGO])
    await app[JOBS].ensure_indexes()
    app[SNAPSHOTS] = Snapshots(app[MONGO], index, per_caller=settings.cursor_snapshots_per_caller)
    await app[SNAPSHOTS].ensure_indexes()
    app[READINESS_CHECKS]["similarity"] = similarity.check_ready
    loader = asyncio.get_running_loop().create_task(similarity.run(index, settings.similarity_refresh_seconds))
    coalescer = Coalescer(projector.project, max_batch=settings.projection_batch, max_wait=settings.projection_wait_seconds)
    # Consume only once the index exists: nothing is acked before it can be written.
    await app[BUS].consume(handlers(projector, coalescer))
    retired = RetiredSweeper(index)
    retired.start()  # its first pass drops what the keep-alive released while no process of this service ran
    yield
    await app[BUS].stop_consuming()  # messages in hand finish before what their handlers use closes
    loader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loader
    await app[JOBS].close()
    await retired.stop()
    app[HASHER].close()


async def init_app(settings: SearchSettings) -> web.Application:
    info = ServiceInfo(title="Image Corpus — search", client_max_size=settings.max_query_image_bytes)
    app = build_app(settings, info, routes.endpoints())
    app[SEARCH_SETTINGS] = settings
    add_admin_page(app)
    app.cleanup_ctx.extend([elastic_ctx, blob_signer_ctx, bus_ctx, search_ctx])
    return app
