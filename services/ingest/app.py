"""The ingest app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.ingest import routes
from services.ingest.adapters.cpu import CpuPool
from services.ingest.adapters.repository import ImageRepository
from services.ingest.config import IngestSettings
from services.ingest.deps import DEPS, INGEST_SETTINGS
from services.ingest.service import IngestDeps
from shared.outbox import OutboxRelay
from shared.web import ServiceInfo, build_app
from shared.web.resources import BLOBS, BUS, MONGO, blobs_ctx, bus_ctx

# Multipart uploads are streamed with their own cap; this bounds other bodies.
OTHER_BODY_LIMIT = 1024**2


async def ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[INGEST_SETTINGS]
    repository = ImageRepository(app[MONGO])
    await repository.ensure_indexes()
    relay = OutboxRelay(app[MONGO], app[BUS], poll_seconds=settings.outbox_poll_seconds)
    cpu = CpuPool(settings.cpu_workers)
    app[DEPS] = IngestDeps(
        repository=repository,
        blobs=app[BLOBS],
        cpu=cpu,
        relay=relay,
        producer=settings.service_name,
        max_pixels=settings.max_pixels,
    )
    relay.start()
    yield
    await relay.stop()
    cpu.close()


async def init_app(settings: IngestSettings) -> web.Application:
    app = build_app(
        settings, ServiceInfo(title="Image Corpus — ingest", client_max_size=OTHER_BODY_LIMIT), routes.endpoints()
    )
    app[INGEST_SETTINGS] = settings
    app.cleanup_ctx.extend([blobs_ctx, bus_ctx, ingest_ctx])
    return app
