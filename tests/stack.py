"""Checking the local stack is there, and removing what a test session left in it."""

from __future__ import annotations

import aio_pika
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
