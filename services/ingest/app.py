"""The ingest app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from services.ingest import routes
from services.ingest.adapters.cpu import CpuPool
from services.ingest.adapters.fetcher import SafeFetcher
from services.ingest.adapters.jobs import JobRepository
from services.ingest.adapters.repository import ImageRepository
from services.ingest.adapters.s3 import S3Reader
from services.ingest.config import IngestSettings
from services.ingest.deps import DEPS, FETCHER, IMPORT_WORKER, INGEST_SETTINGS, JOBS
from services.ingest.domain.addresses import parse_networks
from services.ingest.handlers import SubmissionHandler, record_invalid
from services.ingest.importer import ImportWorker
from services.ingest.orphans import OrphanSweeper
from services.ingest.rebanding import warn_if_banded_otherwise
from services.ingest.service import GroupCommit, IngestDeps
from shared.outbox import OutboxRelay
from shared.web import ServiceInfo, build_app
from shared.web.idempotency import idempotency_ctx
from shared.web.resources import BLOBS, BUS, MONGO, blobs_ctx, bus_ctx

# Multipart uploads are streamed with their own cap; this bounds other bodies.
OTHER_BODY_LIMIT = 1024**2


def fetcher_for(settings: IngestSettings) -> SafeFetcher:
    return SafeFetcher(
        max_bytes=settings.fetch_max_bytes,
        timeout=settings.fetch_timeout_seconds,
        max_redirects=settings.fetch_max_redirects,
        allow=parse_networks(settings.fetch_allow_networks),
    )


async def ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, db = app[INGEST_SETTINGS], app[MONGO]
    repository = ImageRepository(db)
    await repository.ensure_indexes()
    await warn_if_banded_otherwise(db, settings.near_duplicate_radius)
    jobs = JobRepository(db, settings.import_items_retention_days)
    await jobs.ensure_indexes()
    relay = OutboxRelay.configured(db, app[BUS], settings)
    cpu = CpuPool(settings.cpu_workers, memory_bytes=settings.worker_memory_bytes)
    deps = IngestDeps(
        repository=repository, blobs=app[BLOBS], cpu=cpu, relay=relay, producer=settings.service_name, settings=settings,
        groups=GroupCommit(max_group=settings.store_group),
    )
    fetcher, s3 = fetcher_for(settings), S3Reader(settings)
    worker = ImportWorker(deps, jobs)
    await worker.staging.clear_leftovers(await jobs.unfinished_ids())
    app[DEPS], app[FETCHER], app[JOBS], app[IMPORT_WORKER] = deps, fetcher, jobs, worker
    sweeper = None
    if settings.orphan_sweep_seconds:
        grace = timedelta(seconds=settings.orphan_grace_seconds)
        sweeper = OrphanSweeper(app[BLOBS], db, interval=settings.orphan_sweep_seconds, grace=grace, owner=worker.owner)
        sweeper.start()
    relay.start()
    worker.start()
    if settings.consume_submissions:
        handler = SubmissionHandler(deps, fetcher, s3, db)
        await handler.ensure_indexes()

        async def on_invalid(body: bytes, error: str) -> None:
            await record_invalid(deps, body, error)

        leases = handler.lease_keeper()
        leases.start()
        await app[BUS].consume(handler.handlers(), on_invalid=on_invalid, on_parked=handler.parked)
    yield
    # Consumers first: a message in hand finishes while the worker pool and readers it needs are still open.
    await app[BUS].stop_consuming()
    if settings.consume_submissions:
        await leases.stop()
    if sweeper is not None:
        await sweeper.stop()
    await worker.stop()
    await relay.stop()
    s3.close()
    cpu.close()


async def init_app(settings: IngestSettings) -> web.Application:
    app = build_app(
        settings, ServiceInfo(title="Image Corpus — ingest", client_max_size=OTHER_BODY_LIMIT), routes.endpoints()
    )
    app[INGEST_SETTINGS] = settings
    app.cleanup_ctx.extend([blobs_ctx, bus_ctx, idempotency_ctx, ingest_ctx])
    return app
