"""Checking the local stack is there, and removing what a test session left in it."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import aio_pika
import aiohttp
import pytest

from shared.bus import SUBSCRIPTIONS, dead_letter_queue_name
from shared.clients.blobs import BlobStore
from shared.clients.elastic import elastic_client
from shared.clients.mongo import database, mongo_client
from shared.settings import CorpusSettings


async def remove_exchanges(amqp_url: str, exchanges: list[str]) -> None:
    """Delete these exchanges, their dead-letter exchanges and every service's queues on them."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for exchange in exchanges:
            for service in SUBSCRIPTIONS:
                queue = f"{exchange}.{service}"
                await channel.queue_delete(queue)
                await channel.queue_delete(dead_letter_queue_name(queue))
            await channel.exchange_delete(exchange)
            await channel.exchange_delete(f"{exchange}.dlx")


async def rabbit_management(method: str, path: str) -> Any:
    """RabbitMQ's management API. Its port is the stack's (``STACK_RABBIT_MGMT_PORT``, as
    ``deploy/local/stack.py`` reads it), so a stack on other ports is asked, not the default one."""
    port = os.environ.get("STACK_RABBIT_MGMT_PORT", "15672")
    async with aiohttp.ClientSession(headers={"Authorization": aiohttp.encode_basic_auth("guest", "guest")}) as session:
        async with session.request(method, f"http://127.0.0.1:{port}/api{path}") as response:
            response.raise_for_status()
            return await response.json() if response.content_type == "application/json" else None


async def close_rabbit_connections(connection_name: str) -> int:
    """Close, from the broker's side (as a RabbitMQ restart does: 320 CONNECTION_FORCED), the connections a
    client opened under this name; how many. The management API lists a connection a few seconds after it opens."""
    named = [c["name"] for c in await rabbit_management("GET", "/connections") if c.get("client_properties", {}).get("connection_name") == connection_name]
    for name in named:
        await rabbit_management("DELETE", f"/connections/{quote(name, safe='')}")
    return len(named)


async def require_stack(settings: CorpusSettings) -> None:
    """Exit the run with a clear message when a server does not answer."""
    client, es, blobs = mongo_client(settings), elastic_client(settings), BlobStore(settings)
    try:
        await database(client, settings).command("ping")
        await es.cluster.health()
        await blobs.ensure_bucket()
        connection = await aio_pika.connect(settings.amqp_url)
        await connection.close()
    except Exception as exc:  # noqa: BLE001
        pytest.exit(f"the local stack is not reachable ({type(exc).__name__}: {exc}); run `make stack`", 2)
    finally:
        await client.close()
        await es.close()
        await blobs.close()


async def remove_test_data(settings: CorpusSettings) -> None:
    """Drop the session's database, indices, bucket, queues and exchanges."""
    client, es, blobs = mongo_client(settings), elastic_client(settings), BlobStore(settings)
    try:
        await client.drop_database(settings.mongo_db)
        # Wildcard deletes are refused (action.destructive_requires_name): resolve the names first.
        found = await es.options(ignore_status=404).indices.get(index=f"{settings.es_index_prefix}-*")
        if found.meta.status == 200 and found.body:
            await es.indices.delete(index=",".join(found.body))
        if blobs._client.bucket_exists(blobs.bucket):
            for obj in blobs._client.list_objects(blobs.bucket, recursive=True):
                blobs._client.remove_object(blobs.bucket, obj.object_name)
            blobs._client.remove_bucket(blobs.bucket)
        await remove_exchanges(settings.amqp_url, [settings.amqp_exchange])
    finally:
        await client.close()
        await es.close()
        await blobs.close()
