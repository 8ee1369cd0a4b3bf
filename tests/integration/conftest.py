"""Integration fixtures: real clients against the local stack, cleaned up afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from shared.bus import Bus, dead_letter_queue_name
from shared.clients.blobs import BlobStore
from shared.clients.elastic import elastic_client
from shared.clients.mongo import database, mongo_client
from shared.settings import CorpusSettings
from tests.stack import remove_test_data, require_stack


@pytest.fixture(scope="session", autouse=True)
async def stack_is_up(base_settings: CorpusSettings) -> AsyncIterator[None]:
    """Fail fast, and say how to fix it, when the local stack is not running; clean up after."""
    await require_stack(base_settings)
    yield
    await remove_test_data(base_settings)


@pytest.fixture(scope="session", autouse=True)
async def ttl_monitor_every_second(stack_is_up, base_settings: CorpusSettings) -> AsyncIterator[None]:
    """MongoDB's TTL monitor removes expired records once a minute; the retention tests wait for it to.
    Set once at the session's start, because a pass already asleep wakes only on its old minute; restored
    at the end."""
    client = mongo_client(base_settings)
    was = (await client.admin.command("getParameter", 1, ttlMonitorSleepSecs=1))["ttlMonitorSleepSecs"]
    await client.admin.command("setParameter", 1, ttlMonitorSleepSecs=1)
    yield
    await client.admin.command("setParameter", 1, ttlMonitorSleepSecs=was)
    await client.close()


@pytest.fixture
async def own_names(names):
    """Stores of this test's own (database, bucket, exchange, index prefix), removed afterwards: for tests
    that store images other test modules might also use (the COCO sample), and for tests that count what is
    in a whole store (a reconcile's drift), which the session's other tests and services also write to."""
    suffix = uuid.uuid4().hex[:6]
    own = {
        **names,
        "mongo_db": f"{names['mongo_db']}_{suffix}",
        "minio_bucket": f"{names['minio_bucket']}-{suffix}",
        "amqp_exchange": f"{names['amqp_exchange']}-{suffix}",
        "es_index_prefix": f"{names['es_index_prefix']}-{suffix}",
    }
    yield own
    await remove_test_data(CorpusSettings(**own))


@pytest.fixture
async def own_db(own_names):
    """The database of ``own_names``."""
    client = mongo_client(CorpusSettings(**own_names))
    yield database(client, CorpusSettings(**own_names))
    await client.close()


@pytest.fixture
async def mongo_db(base_settings):
    client = mongo_client(base_settings)
    yield database(client, base_settings)
    await client.close()


@pytest.fixture
async def es(base_settings):
    client = elastic_client(base_settings)
    yield client
    await client.close()


@pytest.fixture
async def blob_store(base_settings):
    store = BlobStore(base_settings)
    await store.ensure_bucket()
    yield store
    await store.close()


async def _serve(app):
    from aiohttp.test_utils import TestClient, TestServer

    from tests.conftest import ADMIN

    client = TestClient(TestServer(app), headers=ADMIN)
    await client.start_server()
    return client


@pytest.fixture(scope="session")
async def ingest_client(names):
    from services.ingest.app import init_app
    from services.ingest.config import IngestSettings

    client = await _serve(await init_app(IngestSettings(**names, max_upload_bytes=2 * 1024**2)))
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def search_client(names):
    from services.search.app import init_app
    from services.search.config import SearchSettings

    client = await _serve(await init_app(SearchSettings(**names)))
    yield client
    await client.close()


@pytest.fixture
async def own_search(own_names):
    """A search app on stores of its own (``own_names``), and its settings."""
    from services.search.app import init_app
    from services.search.config import SearchSettings

    settings = SearchSettings(**own_names)
    client = await _serve(await init_app(settings))
    yield client, settings
    await client.close()


@pytest.fixture(scope="session")
async def annotation_client(names, search_client):
    """The annotation service, asking the session's search service for exports by search query."""
    from services.annotation.app import init_app
    from services.annotation.config import AnnotationSettings

    client = await _serve(await init_app(AnnotationSettings(**names, search_url=str(search_client.make_url("")))))
    yield client
    await client.close()


@pytest.fixture
async def make_bus(base_settings):
    """A connected bus of a service of its own (its queues removed afterwards), with settings overridden."""
    made: list[Bus] = []

    async def make(**overrides) -> Bus:
        service = f"probe-{uuid.uuid4().hex[:6]}"
        bus = Bus(base_settings.model_copy(update={"service_name": service, "consume_attempts": 3, **overrides}))
        await bus.connect()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()
        connection = await aio_pika.connect(bus.settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(bus.settings.queue_name())
            await channel.queue_delete(dead_letter_queue_name(bus.settings.queue_name()))


@pytest.fixture
async def bus(make_bus):
    return await make_bus()
