"""``image.submitted`` from upstream: by S3 reference or URL, idempotent, rejected with reasons, parked when transient."""

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from services.ingest.adapters.repository import IMAGES, REJECTIONS
from services.ingest.config import IngestSettings
from services.ingest.deps import INGEST_SETTINGS
from services.ingest.handlers import SUBMISSIONS
from shared.bus import Bus, dead_letter_queue_name
from shared.events import Envelope, ImageSubmitted
from shared.outbox import OUTBOX
from tests.conftest import eventually
from tests.photos import skimage_photo, unique_png


async def parked_message(channel: aio_pika.abc.AbstractChannel, queue: str) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message parked on the queue's dead-letter queue (taken off it), waiting for it to arrive."""
    dlq = await channel.get_queue(dead_letter_queue_name(queue))

    async def parked():
        message = await dlq.get(no_ack=False, fail=False)
        if message is not None:
            await message.ack()
        return message

    return await eventually(parked)


@pytest.fixture
async def bus(names):
    bus = Bus(IngestSettings(**names, service_name="upstream-test"))
    await bus.connect()
    yield bus
    await bus.close()


def submitted(**data) -> Envelope:
    return Envelope.wrap(ImageSubmitted(**data), producer="scraper-test")


async def _record(mongo_db, event_id):
    """The submission's record once settled (while a delivery takes it, it is a claim: status 'taking')."""
    return await mongo_db[SUBMISSIONS].find_one({"_id": event_id, "status": {"$ne": "taking"}})


async def test_s3_submission_is_ingested_once_with_its_labels(ingest_client, bus, blob_store, mongo_db):
    data = skimage_photo("microaneurysms.png")
    sha = hashlib.sha256(data).hexdigest()
    await blob_store.put("upstream/micro.png", data, "image/png")
    event_id = f"scraper-{uuid.uuid4().hex}"
    envelope = submitted(
        source_event_id=event_id,
        s3={"bucket": blob_store.bucket, "key": "upstream/micro.png"},
        sha256=sha,
        source={"kind": "upstream", "uri": "https://example.org/moon", "licence": "CC-BY-4.0", "author": "NASA"},
        tags=["Moon", "space"],
        labels=["Moon", "night sky"],
        metadata={"crawl": 7},
    )
    await bus.publish(envelope)
    record = await eventually(lambda: _record(mongo_db, event_id))
    assert record["status"] in ("created", "duplicate") and record["image_id"] == sha
    doc = await mongo_db[IMAGES].find_one({"_id": sha})
    if record["status"] == "created":
        assert doc["origin"] == {**doc["origin"], "kind": "upstream", "licence": "CC-BY-4.0", "author": "NASA"}
        assert doc["metadata"] == {"crawl": 7} and doc["uploader"] == "producer:scraper-test"
    labels = await mongo_db[OUTBOX].find_one({"type": "annotations.imported", "envelope.data.import_id": f"submission:{event_id}"})
    assert [a["label"] for a in labels["envelope"]["data"]["annotations"]] == ["moon", "night sky"]

    await bus.publish(submitted(source_event_id=event_id, s3={"bucket": blob_store.bucket, "key": "upstream/micro.png"}, labels=["moon"]))
    marker = f"marker-{uuid.uuid4().hex}"
    await bus.publish(submitted(source_event_id=marker, s3={"bucket": blob_store.bucket, "key": "upstream/missing.png"}))
    await eventually(lambda: _record(mongo_db, marker))  # handled after the repeat: the repeat is done too
    assert await mongo_db[OUTBOX].count_documents({"envelope.data.import_id": f"submission:{event_id}"}) == 1
    assert (await _record(mongo_db, marker))["reason"] == "not_found"

    # The same image under another event id with the same label: its classification has the same key (the
    # annotation service keys on dataset, image and source id), so the image gets one, not one per event.
    other = f"scraper-{uuid.uuid4().hex}"
    await bus.publish(submitted(source_event_id=other, s3={"bucket": blob_store.bucket, "key": "upstream/micro.png"}, labels=["moon"]))
    await eventually(lambda: _record(mongo_db, other))
    again = await mongo_db[OUTBOX].find_one({"type": "annotations.imported", "envelope.data.import_id": f"submission:{other}"})
    first = {a["label"]: a["source_id"] for a in labels["envelope"]["data"]["annotations"]}
    [(label, source_id)] = [(a["label"], a["source_id"]) for a in again["envelope"]["data"]["annotations"]]
    assert again["envelope"]["data"]["image_id"] == labels["envelope"]["data"]["image_id"] and source_id == first[label]


async def test_blocked_url_and_invalid_messages_are_rejected_with_reasons(ingest_client, bus, mongo_db, names):
    event_id = f"scraper-{uuid.uuid4().hex}"
    await bus.publish(submitted(source_event_id=event_id, url="http://127.0.0.1:9/secret.png"))
    record = await eventually(lambda: _record(mongo_db, event_id))
    assert (record["status"], record["reason"]) == ("rejected", "blocked_address")

    # Neither url nor s3: not a valid image.submitted. Recorded as a rejection, then parked.
    unfindable = f"crawl-{uuid.uuid4().hex}"
    bad = Envelope(type="image.submitted", schema=1, producer="scraper-test", correlation_id="c-1", data={"source_event_id": unfindable})
    connection = await aio_pika.connect(IngestSettings(**names).amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(names["amqp_exchange"])
        await exchange.publish(aio_pika.Message(bad.to_json()), routing_key="image.submitted")
        rejection = await eventually(lambda: mongo_db[REJECTIONS].find_one({"reason": "invalid_message", "message": {"$regex": unfindable}}))
        assert "url" in rejection["message"] and "s3" in rejection["message"]
        # The producer can find it by what it sent: its event id, its source_event_id, and who it is.
        assert str(bad.id) in rejection["message"] and rejection["uploader"] == "producer:scraper-test"
        message = await parked_message(channel, f"{names['amqp_exchange']}.ingest")
        assert message.headers["x-outcome"] == "invalid"
        # The same message again (a replay of the parked one): parked again, still one rejection record.
        await exchange.publish(aio_pika.Message(bad.to_json()), routing_key="image.submitted")
        again = await parked_message(channel, f"{names['amqp_exchange']}.ingest")
        assert again.body == message.body
        assert await mongo_db[REJECTIONS].count_documents({"reason": "invalid_message", "message": {"$regex": unfindable}}) == 1


async def test_transient_failures_are_retried_then_parked_and_listed_as_rejections(make_ingest, listen, names, mongo_db):
    server = await listen("127.0.0.2")
    server.routes["/busy.png"] = (503, {}, b"try later")
    client = await make_ingest(own_exchange=True, fetch_allow_networks=["127.0.0.2/32"], consume_attempts=3)
    exchange_name = client.server.app[INGEST_SETTINGS].amqp_exchange
    upstream = Bus(IngestSettings(**{**names, "amqp_exchange": exchange_name}, service_name="upstream-test"))
    await upstream.connect()
    event_id = f"busy-{uuid.uuid4().hex}"
    try:
        await upstream.publish(submitted(source_event_id=event_id, url=server.url("/busy.png")))
        connection = await aio_pika.connect(IngestSettings(**names).amqp_url)
        async with connection:
            channel = await connection.channel()
            message = await parked_message(channel, f"{exchange_name}.ingest")
            assert message.headers["x-outcome"] == "failed"
            assert "503" in message.headers["x-error"]
        assert server.connections == 3  # every attempt reached the server, then it was parked
        # The rejections list says so, with the cause and the way back; the event is not marked as taken,
        # so a replay is handled as new.
        rejection = await eventually(lambda: mongo_db[REJECTIONS].find_one({"source": server.url("/busy.png")}))
        assert rejection["reason"] == "retries_exhausted"
        assert "failed 3 times" in rejection["message"] and "503" in rejection["message"]
        assert "corpus bus replay ingest" in rejection["message"]
        assert (rejection["filename"], rejection["uploader"]) == ("busy.png", "producer:scraper-test")
        listed = await client.get("/v1/rejections", params={"reason": "retries_exhausted"})
        assert rejection["_id"] in [r["id"] for r in (await listed.json())["items"]]
        assert await mongo_db[SUBMISSIONS].find_one({"_id": event_id}) is None
    finally:
        await upstream.close()


async def test_a_service_that_stops_with_submissions_in_hand_refuses_none_of_them(make_ingest, listen, names, mongo_db):
    """A graceful stop (SIGINT, SIGTERM: the app's clean-up) used to close the worker pool while the consumer
    still delivered: every submission in hand was refused for good as 'undecodable' ("cannot schedule new
    futures after shutdown"). Now consuming stops first and the messages in hand finish."""
    from tests.stack import remove_exchanges

    server = await listen("127.0.0.2")
    server.delay = 1.0  # each fetch takes a second: the stop comes while they are in hand
    photos = {f"/stop-{n}.png": unique_png(skimage_photo(name)) for n, name in enumerate(["coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg"])}
    for path, data in photos.items():
        server.routes[path] = (200, {"Content-Type": "image/png"}, data)
    exchange = f"{names['amqp_exchange']}-stop-{uuid.uuid4().hex[:6]}"
    client = await make_ingest(amqp_exchange=exchange, fetch_allow_networks=["127.0.0.2/32"])
    upstream = Bus(IngestSettings(**{**names, "amqp_exchange": exchange}, service_name="upstream-test"))
    await upstream.connect()
    ids = {path: f"stop-{uuid.uuid4().hex}" for path in photos}
    try:
        for path, event_id in ids.items():
            await upstream.publish(submitted(source_event_id=event_id, url=server.url(path)))
        await eventually(lambda: asyncio.sleep(0, server.connections >= 2))
        await client.close()  # the graceful stop
        records = {r["_id"]: r async for r in mongo_db[SUBMISSIONS].find({"_id": {"$in": list(ids.values())}})}
        assert {r["status"] for r in records.values()} <= {"created"}, records  # none refused, none left 'taking'
        assert await mongo_db[REJECTIONS].count_documents({"source": {"$in": [server.url(p) for p in photos]}}) == 0
        # What the stopped service did not finish, its successor takes from the queue.
        await make_ingest(amqp_exchange=exchange, fetch_allow_networks=["127.0.0.2/32"])

        async def all_created():
            settled = await mongo_db[SUBMISSIONS].find({"_id": {"$in": list(ids.values())}, "status": "created"}).to_list()
            return len(settled) == len(ids)

        await eventually(all_created, timeout=60)
        stored = {hashlib.sha256(data).hexdigest() for data in photos.values()}
        assert await mongo_db[IMAGES].count_documents({"_id": {"$in": sorted(stored)}}) == len(stored)
    finally:
        await upstream.close()
        await remove_exchanges(IngestSettings(**names).amqp_url, [exchange])


def _consumed_ok() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("corpus_events_consumed_total", {"type": "image.submitted", "outcome": "ok"}) or 0.0


async def test_two_deliveries_of_one_event_at_the_same_moment_store_one_image(ingest_client, bus, blob_store, mongo_db):
    photos = [unique_png(skimage_photo("rocket.jpg")) for _ in range(2)]  # different bytes, so both could be stored
    for n, data in enumerate(photos):
        await blob_store.put(f"upstream/race-{n}.png", data, "image/png")
    event_id = f"race-{uuid.uuid4().hex}"
    before = _consumed_ok()
    await asyncio.gather(
        *(bus.publish(submitted(source_event_id=event_id, s3={"bucket": blob_store.bucket, "key": f"upstream/race-{n}.png"})) for n in range(2))
    )
    await eventually(lambda: asyncio.sleep(0, _consumed_ok() - before >= 2))  # both deliveries handled and acked
    record = await _record(mongo_db, event_id)
    stored = [await mongo_db[IMAGES].find_one({"_id": hashlib.sha256(data).hexdigest()}) for data in photos]
    assert sum(doc is not None for doc in stored) == 1, "one submission, one image"
    assert record["status"] == "created" and record["image_id"] in {hashlib.sha256(data).hexdigest() for data in photos}
    assert "lease_until" not in record


async def test_a_claim_left_by_a_consumer_that_died_is_taken_over_when_its_lease_runs_out(ingest_client, bus, blob_store, mongo_db):
    data = unique_png(skimage_photo("rocket.jpg"))
    await blob_store.put("upstream/orphaned-claim.png", data, "image/png")
    event_id = f"died-{uuid.uuid4().hex}"
    await mongo_db[SUBMISSIONS].insert_one({"_id": event_id, "status": "taking", "lease_until": datetime.now(UTC) - timedelta(seconds=1)})
    await bus.publish(submitted(source_event_id=event_id, s3={"bucket": blob_store.bucket, "key": "upstream/orphaned-claim.png"}))
    record = await eventually(lambda: mongo_db[SUBMISSIONS].find_one({"_id": event_id, "status": {"$ne": "taking"}}))
    assert (record["status"], record["image_id"]) == ("created", hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize(
    "data, says",
    [
        ({"s3": {"bucket": "../..", "key": "../../etc/passwd"}}, "s3.bucket"),
        ({"s3": {"bucket": "corpus", "key": ""}}, "s3.key"),
        ({"url": "https://example.org/a.jpg", "metadata": {"blob": "z" * 70_000}}, "at most 65,536"),
        # Valid JSON MongoDB cannot hold: it failed at the image's transaction, after its blobs were stored.
        ({"url": "https://example.org/a.jpg", "metadata": {"lens\u0000": "x"}}, "cannot be stored"),
        ({"url": "https://example.org/a.jpg", "metadata": {"id": 2**64}}, "8-byte ints"),
    ],
    ids=["bucket", "empty-key", "metadata", "metadata-nul-key", "metadata-huge-int"],
)
async def test_a_reference_or_metadata_nothing_can_take_is_an_invalid_message_at_once(ingest_client, names, mongo_db, data, says):
    marker = f"invalid-{uuid.uuid4().hex}"
    body = Envelope(type="image.submitted", schema=1, producer="scraper-test", correlation_id="c-2", data={"source_event_id": marker, **data})
    connection = await aio_pika.connect(IngestSettings(**names).amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(names["amqp_exchange"])
        await exchange.publish(aio_pika.Message(body.to_json()), routing_key="image.submitted")
        message = await parked_message(channel, f"{names['amqp_exchange']}.ingest")
    assert message.headers["x-outcome"] == "invalid" and says in message.headers["x-error"]
    assert await mongo_db[REJECTIONS].find_one({"reason": "invalid_message", "message": {"$regex": says.replace(".", r"\.")}})


async def test_the_bus_refuses_to_publish_an_event_type_nothing_would_receive(bus):
    from shared.events import UnknownEventError

    typo = Envelope(type="image.submited", schema=1, producer="scraper-test", correlation_id="c-3", data={"source_event_id": "x", "url": "https://example.org/a.jpg"})
    with pytest.raises(UnknownEventError, match="image.submited"):
        await bus.publish(typo)


async def test_an_object_reference_the_store_calls_bad_is_rejected_at_once_not_retried(ingest_client, bus, blob_store, mongo_db):
    event_id = f"bad-key-{uuid.uuid4().hex}"
    await bus.publish(submitted(source_event_id=event_id, s3={"bucket": blob_store.bucket, "key": "/"}))
    record = await eventually(lambda: _record(mongo_db, event_id))
    assert (record["status"], record["reason"]) == ("rejected", "invalid_message")
    assert "BadRequest" in record["message"]


async def test_the_object_store_not_answering_is_an_outage_and_the_corpus_own_objects_are_no_source(names):
    """A MinIO outage used to park every S3 submission after five attempts; an outage is waited out instead."""
    from services.ingest.adapters.s3 import ObjectUnavailable, S3Reader
    from shared.outages import is_outage
    from tests.processes import free_port

    away = S3Reader(IngestSettings(**{**names, "minio_endpoint": f"127.0.0.1:{free_port()}"}))
    try:
        with pytest.raises(ObjectUnavailable) as failed:
            await away.read("upstream-bucket", "a.png", 1024)
        assert failed.value.transient and is_outage(failed.value), failed.value
    finally:
        away.close()
    reader = S3Reader(IngestSettings(**names))
    try:
        with pytest.raises(ObjectUnavailable) as own:
            await reader.read(names["minio_bucket"], "thumbnails/00/00/x.jpg", 1024)
        assert (own.value.reason, own.value.transient) == ("invalid_message", False) and "corpus's own objects" in own.value.message
    finally:
        reader.close()


async def test_a_claim_is_renewed_while_its_delivery_lives_so_a_short_lease_serves_a_slow_source(make_ingest, listen, names, mongo_db):
    """Claims are renewed every third of the lease: a live delivery keeps its claim through a fetch longer than
    the lease, and a dead one's claim runs out one lease after its last renewal (30 s by default, not 120)."""
    from tests.stack import remove_exchanges

    server = await listen("127.0.0.2")
    server.delay = 3.0  # twice the lease
    data = unique_png(skimage_photo("coffee.png"))
    server.routes["/slow.png"] = (200, {"Content-Type": "image/png"}, data)
    exchange = f"{names['amqp_exchange']}-lease-{uuid.uuid4().hex[:6]}"
    await make_ingest(amqp_exchange=exchange, fetch_allow_networks=["127.0.0.2/32"], submission_lease_seconds=1.5)
    upstream = Bus(IngestSettings(**{**names, "amqp_exchange": exchange}, service_name="upstream-test"))
    await upstream.connect()
    event_id = f"lease-{uuid.uuid4().hex}"
    try:
        await upstream.publish(submitted(source_event_id=event_id, url=server.url("/slow.png")))
        first = (await eventually(lambda: mongo_db[SUBMISSIONS].find_one({"_id": event_id, "status": "taking"})))["lease_until"]
        await asyncio.sleep(2.0)  # past the first lease: without renewal the claim would have run out by now
        held = await mongo_db[SUBMISSIONS].find_one({"_id": event_id})
        assert held["status"] == "taking" and held["lease_until"] > first, held
        record = await eventually(lambda: _record(mongo_db, event_id))
        assert (record["status"], record["image_id"]) == ("created", hashlib.sha256(data).hexdigest())
        assert "owner" not in record and "lease_until" not in record  # settled: nobody's claim any more
    finally:
        await upstream.close()
        await remove_exchanges(IngestSettings(**names).amqp_url, [exchange])


async def test_a_process_renews_and_frees_only_its_own_claims(ingest_client, mongo_db):
    """A process whose renewals stalled past the lease must not renew, or free, a claim a peer took over."""
    from services.ingest.deps import DEPS
    from services.ingest.handlers import SubmissionHandler

    deps = ingest_client.server.app[DEPS]
    mine, peers = SubmissionHandler(deps, None, None, mongo_db), SubmissionHandler(deps, None, None, mongo_db)
    event_id = f"owned-{uuid.uuid4().hex}"
    assert await mine._claim(event_id) is None
    await mongo_db[SUBMISSIONS].update_one({"_id": event_id}, {"$set": {"lease_until": datetime.now(UTC) - timedelta(seconds=1)}})
    assert await peers._claim(event_id) is None  # the lease ran out: the peer takes it over
    taken = await mongo_db[SUBMISSIONS].find_one({"_id": event_id})
    mine.held.add(event_id)
    await mine._renew()
    assert await mongo_db[SUBMISSIONS].find_one({"_id": event_id}) == taken  # not renewed by the stalled process
    peers.held.add(event_id)
    await peers._renew()
    assert (await mongo_db[SUBMISSIONS].find_one({"_id": event_id}))["lease_until"] > taken["lease_until"]


async def test_an_event_parked_at_its_first_attempt_is_not_said_to_have_failed_every_attempt(ingest_client, mongo_db):
    """A failure retrying cannot change (a document MongoDB refuses) parks the event at once; its rejection
    said "failed 5 times" all the same, and was listed as retries_exhausted."""
    from services.ingest.deps import DEPS
    from services.ingest.handlers import SubmissionHandler

    handler = SubmissionHandler(ingest_client.server.app[DEPS], None, None, mongo_db)
    url = f"https://example.org/{uuid.uuid4().hex}.jpg"
    envelope = Envelope(type="image.submitted", schema=1, producer="scraper-test", correlation_id="c-3", data={"source_event_id": "e", "url": url})
    data = ImageSubmitted.model_validate(envelope.data)
    await handler.parked(envelope, data, "InvalidDocument: cannot encode object", 1)
    once = await mongo_db[REJECTIONS].find_one({"source": url})
    assert once["reason"] == "not_retryable" and "at the first attempt" in once["message"]
    assert "InvalidDocument" in once["message"] and "times" not in once["message"]
    attempts = ingest_client.server.app[DEPS].settings.consume_attempts
    other = url.replace(".jpg", "-2.jpg")
    await handler.parked(envelope, data.model_copy(update={"url": other}), "HTTPError: 503", attempts)
    assert (await mongo_db[REJECTIONS].find_one({"source": other}))["reason"] == "retries_exhausted"
