"""SIGKILL the ingest service in the middle of batch uploads: nothing answered is lost, nothing is stored twice.

The client does what a careful client does: it sends every batch under an
``Idempotency-Key`` and repeats the ones that got no answer, with the same
key, once the service is back. The killed process's claims on those keys run
out (the lease is 2 s here) and the repeats run them again. At the end every
image is stored once, with its blobs, its one ``image.ingested`` event and
its search document, and no blob is left without its document.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from datetime import timedelta

import aiohttp
import pytest
from PIL import Image

from services.ingest.adapters.repository import IMAGES
from services.ingest.orphans import remove_orphan_blobs
from shared.clients.blobs import BlobStore, original_key, thumbnail_key
from shared.clients.mongo import database, mongo_client
from shared.outbox import OUTBOX
from shared.settings import CorpusSettings
from tests.conftest import ADMIN, eventually
from tests.e2e.conftest import e2e_names
from tests.e2e.test_end_to_end import real_photos, search_ids
from tests.integration.ingest.test_batch_upload import batch_form

pytestmark = pytest.mark.e2e

BATCHES, PER_BATCH = 16, 4


def variants(tag: str) -> list[tuple[str, bytes]]:
    """Four versions of each of sixteen real photos, each with one 4 × 4 block nudged: bytes of their own."""
    found = []
    for name, data in real_photos()[:16]:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        for n in range(PER_BATCH):
            for dx in range(4):
                for dy in range(4):
                    r, g, b = image.getpixel((8 * n + dx, dy))
                    image.putpixel((8 * n + dx, dy), ((r + 97) % 256, g, (b + hash(tag) % 200) % 256))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=92, comment=f"{tag} {name} {n}".encode())  # two samples may be one picture
            found.append((f"{name}-{n}.jpg", buffer.getvalue()))
    return found


async def answer_when_back(http: aiohttp.ClientSession, url: str, files, tag: str, key: str) -> dict:
    """Repeat a batch under its key until it is answered (409 while the dead process's claim still holds, 503
    while a store the restarted service needs is slow to answer: both say when to come back)."""
    for _ in range(30):
        async with http.post(url, data=batch_form(files, tags=tag), headers={"Idempotency-Key": key}) as response:
            if response.status in (409, 503):
                await asyncio.sleep(int(response.headers["Retry-After"]))
                continue
            assert response.status == 200, await response.text()
            return await response.json()
    raise AssertionError(f"batch {key} was never answered")


async def test_sigkill_mid_upload_loses_nothing_and_stores_nothing_twice(services):
    ingest = services["ingest"]
    ingest.stop()
    ingest.env["CORPUS_IDEMPOTENCY_LEASE_SECONDS"] = "2"
    await ingest.start()
    tag = f"crash-{uuid.uuid4().hex[:8]}"
    files = variants(tag)
    shas = {hashlib.sha256(data).hexdigest() for _, data in files}
    assert len(shas) == BATCHES * PER_BATCH
    batches = [files[i : i + PER_BATCH] for i in range(0, len(files), PER_BATCH)]
    keys = [f"{tag}-{n}" for n in range(BATCHES)]
    url = f"{ingest.url}/v1/images:batch"
    answers: dict[int, dict] = {}
    async with aiohttp.ClientSession(headers=ADMIN) as http:

        async def send(n: int) -> None:
            async with http.post(url, data=batch_form(batches[n], tags=tag), headers={"Idempotency-Key": keys[n]}) as r:
                assert r.status == 200, await r.text()
                answers[n] = await r.json()

        sending = [asyncio.create_task(send(n)) for n in range(BATCHES)]
        await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
        ingest.proc.kill()  # SIGKILL: no shutdown hooks, no goodbyes
        ingest.proc.wait()
        outcomes = await asyncio.gather(*sending, return_exceptions=True)
        cut = [n for n in range(BATCHES) if n not in answers]
        assert cut, "every batch was answered before the kill: nothing was cut off"
        assert all(isinstance(outcomes[n], aiohttp.ClientError) for n in cut), outcomes

        await ingest.start()
        for n in cut:
            answers[n] = await answer_when_back(http, url, batches[n], tag, keys[n])

        answered = {}
        for n, body in answers.items():
            for (name, data), item in zip(batches[n], body["items"], strict=True):
                assert item["status"] in (200, 201), item
                answered[item["id"]] = hashlib.sha256(data).hexdigest()
        assert answered == {sha: sha for sha in shas}

        async def all_searchable() -> bool:
            return set(await search_ids(http, services["search"].url, q=tag, limit="100")) == shas

        await eventually(all_searchable, timeout=60)

    settings = CorpusSettings(**e2e_names())
    client, blobs = mongo_client(settings), BlobStore(settings)
    try:
        db = database(client, settings)
        assert await db[IMAGES].count_documents({"_id": {"$in": sorted(shas)}}) == len(shas)
        events = [e["envelope"]["data"]["image_id"] async for e in db[OUTBOX].find({"type": "image.ingested", "envelope.data.image_id": {"$in": sorted(shas)}})]
        assert sorted(events) == sorted(shas)  # one event each: a repeat of an image the dead process stored adds none
        for sha in shas:
            assert await blobs.exists(original_key(sha)) and await blobs.exists(thumbnail_key(sha))
        report = await remove_orphan_blobs(blobs, db, grace=timedelta(0), dry_run=True)
        assert report.orphans == 0, report.examples  # every blob the killed process wrote has its document
    finally:
        await client.close()
        await blobs.close()
