"""What counts as an outage, from what the real clients raise: a store gone is one, a bad request is not."""

from __future__ import annotations

import uuid

import elasticsearch
import pytest
from elasticsearch import AsyncElasticsearch
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.clients.blobs import BlobStore, BlobWriteError
from shared.outages import is_outage
from tests.processes import free_port

pytestmark = pytest.mark.integration


async def test_a_store_that_does_not_answer_is_an_outage(base_settings):
    nothing = free_port()  # no server listens here
    mongo = AsyncMongoClient(f"mongodb://127.0.0.1:{nothing}/", serverSelectionTimeoutMS=300)
    with pytest.raises(PyMongoError) as mongo_gone:
        await mongo["corpus"]["images"].find_one({})
    await mongo.close()
    es = AsyncElasticsearch(f"http://127.0.0.1:{nothing}", max_retries=0)
    with pytest.raises(elasticsearch.ConnectionError) as es_gone:
        await es.info()
    await es.close()
    blobs = BlobStore(base_settings.model_copy(update={"minio_endpoint": f"127.0.0.1:{nothing}"}))
    with pytest.raises(BlobWriteError) as minio_gone:
        await blobs.put("originals/x", b"bytes", "application/octet-stream")
    await blobs.close()
    assert is_outage(mongo_gone.value) and is_outage(es_gone.value) and is_outage(minio_gone.value)


async def test_a_request_the_store_refuses_is_not_an_outage(mongo_db, es, base_settings):
    key = uuid.uuid4().hex
    await mongo_db["outage_probe"].insert_one({"_id": key})
    with pytest.raises(DuplicateKeyError) as duplicate:
        await mongo_db["outage_probe"].insert_one({"_id": key})
    await mongo_db["outage_probe"].drop()
    with pytest.raises(elasticsearch.NotFoundError) as missing:
        await es.get(index=f"no-such-index-{key}", id="1")
    blobs = BlobStore(base_settings.model_copy(update={"minio_bucket": f"no-such-bucket-{key[:12]}"}))
    with pytest.raises(BlobWriteError) as no_bucket:
        await blobs.put("originals/x", b"bytes", "application/octet-stream")
    await blobs.close()
    assert not is_outage(duplicate.value) and not is_outage(missing.value) and not is_outage(no_bucket.value)
    assert not is_outage(ConnectionError("a producer's URL"))  # upstream trouble is the submission's, not ours


async def test_a_transaction_that_cannot_finish_gives_up_within_its_time_as_an_outage(mongo_db):
    """PyMongo re-runs a transaction on transient errors for up to 120 s; ours stop re-running at the time given.

    Another transaction holds the document, so every attempt hits a write conflict (a transient error),
    as every attempt hits an unreachable server during an outage."""
    import asyncio

    from shared.clients.mongo import TransactionGaveUp, in_transaction

    collection = mongo_db[f"outage_probe_{uuid.uuid4().hex[:8]}"]
    await collection.insert_one({"_id": "held", "n": 0})
    async with mongo_db.client.start_session() as holder:
        await holder.start_transaction()
        await collection.update_one({"_id": "held"}, {"$inc": {"n": 1}}, session=holder)

        async def work(session):
            await collection.update_one({"_id": "held"}, {"$inc": {"n": 10}}, session=session)

        with pytest.raises(TransactionGaveUp) as gave_up:
            await asyncio.wait_for(in_transaction(mongo_db, work, seconds=1.0), timeout=30)  # PyMongo alone: 60 s
        assert holder.in_transaction  # it gave up while the conflict still stood
        await holder.abort_transaction()
    assert is_outage(gave_up.value)  # answered as a 503 with Retry-After, not a 500
    assert (await collection.find_one({"_id": "held"}))["n"] == 0  # neither wrote
    await collection.drop()


async def test_a_slow_transaction_on_a_healthy_server_is_not_cut_short(mongo_db):
    """Only re-runs are bounded: work that takes longer than the bound, without a transient error, commits."""
    import asyncio

    from shared.clients.mongo import in_transaction

    collection = mongo_db[f"outage_probe_{uuid.uuid4().hex[:8]}"]
    await collection.insert_one({"_id": "slow", "n": 0})

    async def work(session):
        await collection.update_one({"_id": "slow"}, {"$inc": {"n": 1}}, session=session)
        await asyncio.sleep(1.5)  # longer than the bound below
        await collection.update_one({"_id": "slow"}, {"$inc": {"n": 1}}, session=session)

    await in_transaction(mongo_db, work, seconds=0.5)
    assert (await collection.find_one({"_id": "slow"}))["n"] == 2
    await collection.drop()
