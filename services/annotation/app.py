"""The annotation app factory."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

from aiohttp import web

from services.annotation import routes
from services.annotation.adapters.annotations import AnnotationRepository
from services.annotation.adapters.label_changes import LabelRepository
from services.annotation.adapters.drain_process import DrainProcess
from services.annotation.adapters.search_service import SearchService
from services.annotation.adapters.store import ensure_indexes
from services.annotation.adapters.users import UserRepository
from services.annotation.adapters.workers import RenewingProcessPool
from services.annotation.config import AnnotationSettings
from services.annotation.deps import ANNOTATION_SETTINGS, DEPS, SEARCH, USERS_REPO
from services.annotation.handlers import handlers
from services.annotation.service import AnnotationDeps
from shared.auth.bootstrap import create_first_admin
from shared.web import ServiceInfo, build_app
from shared.web.idempotency import idempotency_ctx
from shared.web.resources import BUS, MONGO, SETTINGS, blobs_ctx, bus_ctx


async def bootstrap_admin_ctx(app: web.Application) -> AsyncIterator[None]:
    """On a fresh install without CORPUS_ADMIN_KEY, make the first admin and show its key once."""
    if app[SETTINGS].admin_key is None:
        key = await create_first_admin(app[MONGO])
        if key is not None:
            print(f"\n  Bootstrap admin API key (shown once, store it now): {key}\n", file=sys.stdout, flush=True)
    yield


async def annotation_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[ANNOTATION_SETTINGS]
    db = app[MONGO]
    await ensure_indexes(db)
    # The drain and the outbox relay run in a process of their own, off the request loop.
    drain = DrainProcess(settings)
    await drain.start()
    # forkserver: never fork the event-loop process with its threads and sockets.
    cpu = RenewingProcessPool(settings.cpu_workers)
    deps = AnnotationDeps(
        annotations=AnnotationRepository(db),
        labels=LabelRepository(db, settings.service_name),
        pending=drain,
        cpu=cpu,
        producer=settings.service_name,
    )
    app[DEPS] = deps
    app[USERS_REPO] = UserRepository(db)
    app[SEARCH] = SearchService(settings.search_url)
    await app[BUS].consume(handlers(deps))
    yield
    await app[BUS].stop_consuming()  # messages in hand finish before what their handlers use closes
    await drain.stop()
    await app[SEARCH].close()
    cpu.shutdown(wait=True, cancel_futures=True)


async def init_app(settings: AnnotationSettings) -> web.Application:
    info = ServiceInfo(title="Image Corpus — annotation", client_max_size=settings.max_body_bytes)
    app = build_app(settings, info, routes.endpoints())
    app[ANNOTATION_SETTINGS] = settings
    app.cleanup_ctx.extend([blobs_ctx, bus_ctx, bootstrap_admin_ctx, idempotency_ctx, annotation_ctx])
    return app
