"""An Elasticsearch outage delays indexing and parks nothing; searches meanwhile get 503 with Retry-After.
A RabbitMQ connection cut and restored: the consumer reconnects and takes what was published meanwhile.

The search service reaches the real Elasticsearch through a TCP forwarder
that the test cuts (connections reset, new ones refused) and restores. Its
consumer is set to park a message after two attempts 50 ms apart. Without
outage handling, an event that arrives during the outage is parked within a
second and its image stays unsearchable until someone replays it by hand.
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import aio_pika
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.search.app import init_app
from services.search.config import SearchSettings
from shared.bus import Bus, dead_letter_queue_name
from tests.conftest import ADMIN, RUN_ID, eventually
from tests.integration.search.helpers import image_document, ingested, publish, write_images
from tests.photos import skimage_photo
from tests.proxy import TcpProxy
from tests.stack import remove_exchanges

pytestmark = pytest.mark.integration


@pytest.fixture
async def search_with_a_server_cut_off(names, base_settings):
    """Start a search app that reaches one server (``es_url`` or ``amqp_url``) through a TCP forwarder, on an
    exchange of its own so the session's search consumer does not take its events. Gives the app's client,
    a bus on that exchange that is not cut off (the producer), the forwarder and the app's settings."""
    exchange = f"{names['amqp_exchange']}-outage-{uuid.uuid4().hex[:6]}"
    started = []

    async def start(url_setting: str, **overrides):
        url = getattr(base_settings, url_setting)
        target = urlsplit(url)
        proxy = await TcpProxy(target.hostname, target.port).start()
        through = url.replace(target.netloc.split("@")[-1], proxy.address)
        settings = SearchSettings(**{**names, "amqp_exchange": exchange, url_setting: through, **overrides})
        client = TestClient(TestServer(await init_app(settings)), headers=ADMIN)
        await client.start_server()
        bus = Bus(base_settings.model_copy(update={"service_name": "outage-tests", "amqp_exchange": exchange}))
        await bus.connect()
        started.append((client, bus, proxy))
        return client, bus, proxy, settings

    yield start
    for client, bus, proxy in started:
        await bus.close()
        await client.close()
        await proxy.cut()
    await remove_exchanges(base_settings.amqp_url, [exchange])


async def indexed(es, settings: SearchSettings, doc: dict) -> bool:
    return (await es.options(ignore_status=404).get(index=f"{settings.es_index_prefix}-images", id=doc["_id"])).meta.status == 200


async def test_events_during_an_elasticsearch_outage_are_indexed_once_it_is_back(search_with_a_server_cut_off, mongo_db, es):
    client, bus, proxy, settings = await search_with_a_server_cut_off("es_url", consume_attempts=2, consume_backoff_seconds=0.05)
    doc = image_document(skimage_photo("chelsea.png"), f"outage-{RUN_ID}.png", source=f"outage-{RUN_ID}", tags=["outage"])
    await write_images(mongo_db, [doc])
    await proxy.cut()
    await publish(bus, ingested(doc))
    await asyncio.sleep(2.0)  # dozens of 50 ms back-offs: long past the two attempts an ordinary failure gets
    ready = await client.get("/readyz")
    assert ready.status == 503  # the service says what it is missing meanwhile
    searched = await client.get("/v1/search", params={"q": "outage"})
    assert searched.status == 503 and int(searched.headers["Retry-After"]) > 0  # not a 500: nothing is broken
    problem = await searched.json()
    assert problem["type"].endswith("store-unavailable") and problem["store"] == "Elasticsearch"
    await proxy.restore()
    await eventually(lambda: indexed(es, settings, doc), timeout=60)
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.declare_queue(dead_letter_queue_name(settings.queue_name()), passive=True)
        assert dlq.declaration_result.message_count == 0  # nothing parked


async def test_a_cursor_read_during_an_elasticsearch_outage_is_503_not_410_and_reads_on_after_it(search_with_a_server_cut_off, mongo_db):
    """Telling a gone snapshot (410, start again) from an outage (503, retry): the snapshot survives the outage."""
    client, bus, proxy, settings = await search_with_a_server_cut_off("es_url")
    docs = [
        image_document(skimage_photo(name), f"outage-cursor-{n}-{RUN_ID}.png", source=f"outage-cursor-{RUN_ID}", tags=[])
        for n, name in enumerate(("astronaut.png", "rocket.jpg", "camera.png"))
    ]
    await write_images(mongo_db, docs)
    await publish(bus, *(ingested(doc) for doc in docs))
    params = {"sources": f"outage-cursor-{RUN_ID}", "limit": "1"}

    async def all_indexed():
        return (await (await client.get("/v1/search", params=params)).json()).get("total") == len(docs)

    await eventually(all_indexed, timeout=60)
    first = await (await client.get("/v1/search", params=params)).json()
    second = await (await client.get("/v1/search", params={**params, "cursor": first["next"]})).json()  # opens the snapshot
    await proxy.cut()
    during = await client.get("/v1/search", params={**params, "cursor": second["next"]})
    assert during.status == 503 and int(during.headers["Retry-After"]) > 0
    assert (await during.json())["type"].endswith("store-unavailable")
    await proxy.restore()
    after = await client.get("/v1/search", params={**params, "cursor": second["next"]})
    assert after.status == 200, await after.text()
    seen = [item["image_id"] for page in (first, second, await after.json()) for item in page["items"]]
    assert sorted(seen) == sorted(doc["_id"] for doc in docs)


async def test_the_consumer_reconnects_after_rabbitmq_is_cut_off_and_takes_what_waited(search_with_a_server_cut_off, mongo_db, es):
    client, bus, proxy, settings = await search_with_a_server_cut_off("amqp_url")
    before, during = (
        image_document(skimage_photo(name), f"amqp-cut-{n}-{RUN_ID}.png", source=f"amqp-{RUN_ID}", tags=["amqp"])
        for n, name in enumerate(("astronaut.png", "rocket.jpg"))
    )
    await write_images(mongo_db, [before, during])
    await publish(bus, ingested(before))
    await eventually(lambda: indexed(es, settings, before))
    await proxy.cut()
    await publish(bus, ingested(during))  # waits in the durable queue while the consumer is cut off
    await asyncio.sleep(2.0)
    assert not await indexed(es, settings, during)
    ready = await client.get("/readyz")  # a robust connection that is reconnecting is not closed, but not up
    report = await ready.json()  # reported, but the service still serves: 200, degraded
    assert ready.status == 200 and report["status"] == "degraded" and report["checks"]["rabbitmq"].startswith("failed")
    depths = await client.get("/v1/admin/bus")
    assert depths.status == 503 and "RabbitMQ" in (await depths.json())["detail"]  # an outage, not a 500
    await proxy.restore()
    await eventually(lambda: indexed(es, settings, during), timeout=60)  # aio-pika's robust connection came back

    async def ready_again() -> bool:
        return (await (await client.get("/readyz")).json())["status"] == "ready"

    await eventually(ready_again, timeout=30)
    assert (await client.get("/v1/admin/bus")).status == 200


async def test_search_starts_and_serves_while_minio_is_away(names, mongo_db):
    """Search only signs URLs to objects, a local computation: MinIO away delays nothing and fails nothing."""
    from tests.processes import free_port

    settings = SearchSettings(**{**names, "minio_endpoint": f"127.0.0.1:{free_port()}"})  # nothing listens there
    doc = image_document(skimage_photo("coffee.png"), f"minio-away-{RUN_ID}.png", source=f"minio-away-{RUN_ID}", tags=[])
    await write_images(mongo_db, [doc])
    client = TestClient(TestServer(await init_app(settings)), headers=ADMIN)
    await asyncio.wait_for(client.start_server(), timeout=30)  # it waited 60 s for MinIO, then failed to start
    try:
        async def ready() -> dict | None:  # the similarity index loads in the background first
            answer = await client.get("/readyz")
            return await answer.json() if answer.status == 200 else None

        assert "minio" not in (await eventually(ready, timeout=30))["checks"]
        detail = await client.get(f"/v1/images/{doc['_id']}")
        assert detail.status == 200 and (await detail.json())["original_url"].startswith("http://127.0.0.1:")
    finally:
        await client.close()
