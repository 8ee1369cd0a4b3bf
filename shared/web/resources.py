"""Opening and closing the stores, one ``cleanup_ctx`` generator each.

Each generator builds its client from the app's settings, registers a
readiness check, yields while the app runs, and closes the client after.
Services pick the ones they need; nothing is created at import time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from elasticsearch import AsyncElasticsearch
from pymongo.asynchronous.database import AsyncDatabase
from tenacity import AsyncRetrying, stop_after_delay, wait_exponential

from shared.auth import AUTHENTICATOR, Authenticator
from shared.auth.bootstrap import ensure_admin_key
from shared.bus import Bus
from shared.clients.blobs import BlobStore
from shared.clients.elastic import elastic_client
from shared.clients.mongo import database, mongo_client, ping
from shared.settings import CorpusSettings
from shared.web.health import DEGRADED_CHECKS, READINESS_CHECKS

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", CorpusSettings)
MONGO = web.AppKey("mongo", AsyncDatabase)
ELASTIC = web.AppKey("elastic", AsyncElasticsearch)
BLOBS = web.AppKey("blobs", BlobStore)
BUS = web.AppKey("bus", Bus)

def _startup_retry(settings: CorpusSettings) -> AsyncRetrying:
    """Waiting for a dependency that is not up yet, for ``startup_patience_seconds``."""
    return AsyncRetrying(stop=stop_after_delay(settings.startup_patience_seconds), wait=wait_exponential(0.2, max=5), reraise=True)


async def _wait_for(settings: CorpusSettings, probe: Callable[[], Awaitable[object]], close: Callable[[], Awaitable[None]]) -> None:
    """Until ``probe`` answers (a service started beside its stores waits for them instead of failing its
    first index build); the client is closed when the patience runs out."""
    try:
        async for attempt in _startup_retry(settings):
            with attempt:
                await probe()
    except BaseException:
        await close()
        raise


async def mongo_ctx(app: web.Application) -> AsyncIterator[None]:
    client = mongo_client(app[SETTINGS])
    db = database(client, app[SETTINGS])
    await _wait_for(app[SETTINGS], lambda: ping(db), client.close)
    app[MONGO] = db
    app[READINESS_CHECKS]["mongodb"] = lambda: ping(db)
    yield
    await client.close()


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.admin_key is not None:
        async for attempt in _startup_retry(app[SETTINGS]):
            with attempt:
                await ensure_admin_key(app[MONGO], settings.admin_key.get_secret_value())
    app[AUTHENTICATOR] = Authenticator(app[MONGO], anonymous_read=settings.anonymous_read)
    yield


async def elastic_ctx(app: web.Application) -> AsyncIterator[None]:
    es = elastic_client(app[SETTINGS])
    await _wait_for(app[SETTINGS], es.cluster.health, es.close)  # Elasticsearch takes half a minute to start
    app[ELASTIC] = es

    async def check() -> None:
        await es.cluster.health()

    app[READINESS_CHECKS]["elasticsearch"] = check
    yield
    await es.close()


async def blobs_ctx(app: web.Application) -> AsyncIterator[None]:
    blobs = BlobStore(app[SETTINGS])
    async for attempt in _startup_retry(app[SETTINGS]):
        with attempt:
            await blobs.ensure_bucket()
    app[BLOBS] = blobs
    app[READINESS_CHECKS]["minio"] = blobs.ping
    yield
    await blobs.close()


async def blob_signer_ctx(app: web.Application) -> AsyncIterator[None]:
    """Blob storage for a service that only signs URLs to objects (a local computation): it neither waits
    for MinIO at start nor reports MinIO in its readiness, so it serves while MinIO is away."""
    blobs = BlobStore(app[SETTINGS])
    app[BLOBS] = blobs
    yield
    await blobs.close()


async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
    bus = Bus(app[SETTINGS])
    async for attempt in _startup_retry(app[SETTINGS]):
        with attempt:
            await bus.connect()
    app[BUS] = bus

    async def check() -> None:
        if not bus.is_open:
            raise ConnectionError("not connected to RabbitMQ (reconnecting)")

    app[DEGRADED_CHECKS]["rabbitmq"] = check
    yield
    await bus.close()
