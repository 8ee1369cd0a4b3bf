"""``make bench-annotation``: create and update latency (with history) at a 100,000-annotation database.

Loads 100,000 annotations (10 per image on 10,000 images) through the bulk
path into a dedicated database, then measures, over HTTP against the real
app (auth, validation, the conditional write of state + history + event; the drain moving history,
summary and event on in the background is running, as deployed):

- create: ``POST /v1/annotations`` (a box on a random image)
- update: ``PATCH /v1/annotations/{id}`` with ``If-Match`` (a new version + history entry)
- both again through the service layer, without HTTP

The HTTP requests go to the annotation service started as its own process
(as it is deployed, like the ingest and search benchmarks do), from an
aiohttp client in this one, after 100 untimed creates and updates that warm
it up; the service layer runs in this process.

and, as the baseline of the same MongoDB in the same run, one plain
``insert_one``. Prints p50/p95/p99; the target is p95 < 20 ms. Everything it
made is dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.processes import ServiceProcess

from services.annotation.adapters.pending import PendingDrain
from services.annotation.app import init_app
from services.annotation.config import AnnotationSettings
from services.annotation.deps import DEPS
from services.annotation import service
from services.annotation.domain.model import AnnotationPatch
from services.annotation.service import create_many
from shared.auth import Principal, Role
from shared.outbox import OUTBOX
from shared.readmodels import IMAGES
from shared.web.resources import MONGO
from tests.stack import remove_test_data

ANNOTATIONS = int(os.environ.get("CORPUS_BENCH_ANNOTATIONS", "100000"))  # smaller for a smoke run
PER_IMAGE = 10
SAMPLES = 500
WARMUP = 100  # untimed creates and updates against the service before the timed ones
BATCH = 5_000


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100)
    return f"p50 {q[49]:6.2f} ms   p95 {q[94]:6.2f} ms   p99 {q[98]:6.2f} ms   (n={len(ms)})"


async def load(app, image_ids: list[str]) -> None:
    db = app[MONGO]
    now = datetime.now(UTC)
    await db[IMAGES].insert_many(
        [{"_id": i, "width": 640, "height": 480, "format": "JPEG", "sha256": i, "created_at": now} for i in image_ids]
    )
    rng = random.Random(1)
    items = [
        {"image_id": image_ids[n // PER_IMAGE], "type": "bbox", "label": f"class {rng.randrange(80)}",
         "bbox": [rng.randrange(500), rng.randrange(400), 1 + rng.randrange(100), 1 + rng.randrange(60)]}
        for n in range(ANNOTATIONS)
    ]  # fmt: skip
    started = time.perf_counter()
    for start in range(0, len(items), BATCH):
        results = await create_many(app[DEPS], "bench", items[start : start + BATCH])
        assert all(r["status"] == 201 for r in results)
    await drain_everything(db)  # history, summaries and events of the load, before the clock stops
    elapsed = time.perf_counter() - started
    print(f"loaded {ANNOTATIONS:,} annotations (with history, summaries, outbox) in {elapsed:.1f} s "
          f"({ANNOTATIONS / elapsed:,.0f}/s)")  # fmt: skip
    # The load's events are not part of the measurement: mark them sent so the relay stays idle.
    await db[OUTBOX].update_many({"status": "pending"}, {"$set": {"status": "sent", "sent_at": datetime.now(UTC)}})
    # Measure the steady state, not the aftermath of the bulk load: flush it to disk (a WiredTiger
    # checkpoint) so the timed writes do not queue behind the load's own checkpoint and eviction.
    started = time.perf_counter()
    await db.client.admin.command("fsync")
    print(f"flushed the load to disk in {time.perf_counter() - started:.1f} s")


async def drain_everything(db) -> None:
    """Move every pending change now, here (the app's drain process would get there too, a little later)."""
    await PendingDrain.on_demand(db).drain_all()


async def http_phase(
    settings: AnnotationSettings, key: str, image_ids: list[str], to_update: list[str], log_dir: Path, db
) -> tuple[list[float], list[float], float]:
    """Creates and updates over HTTP against the annotation service in its own process (as deployed)."""
    names = {"mongo_db": settings.mongo_db, "amqp_exchange": settings.amqp_exchange, "minio_bucket": settings.minio_bucket,
             "es_index_prefix": settings.es_index_prefix, "admin_key": key, "log_level": "WARNING"}  # fmt: skip
    service = ServiceProcess("annotation", {**os.environ, **{f"CORPUS_{k.upper()}": v for k, v in names.items()}}, log_dir)
    await service.start()
    rng = random.Random(2)
    try:
        async with aiohttp.ClientSession(service.url, headers={"Authorization": f"Bearer {key}"}) as http:
            # Warm up, untimed, as a deployed service is: MongoDB connections opened, the drain
            # process done importing, caches filled. Then time the steady state.
            for _ in range(WARMUP):
                body = {"image_id": rng.choice(image_ids), "type": "bbox", "label": f"class {rng.randrange(80)}", "bbox": [5, 6, 7, 8]}
                async with http.post("/v1/annotations", json=body) as response:
                    warm = await response.json()
                async with http.patch(f"/v1/annotations/{warm['id']}", json={"score": 0.1}, headers={"If-Match": '"1"'}) as response:
                    assert response.status == 200, await response.text()
            await asyncio.sleep(1)
            creates = []
            for _ in range(SAMPLES):
                body = {"image_id": rng.choice(image_ids), "type": "bbox", "label": f"class {rng.randrange(80)}", "bbox": [1, 2, 30, 40]}
                t = time.perf_counter()
                async with http.post("/v1/annotations", json=body) as response:
                    answer = await response.json()
                creates.append(time.perf_counter() - t)
                assert response.status == 201, answer

            updates = []
            for annotation_id in to_update:
                async with http.get(f"/v1/annotations/{annotation_id}") as response:
                    tag = response.headers["ETag"]
                t = time.perf_counter()
                async with http.patch(
                    f"/v1/annotations/{annotation_id}", json={"bbox": [3, 4, 20, 20], "score": 0.5}, headers={"If-Match": tag}
                ) as response:
                    answer = await response.json()
                updates.append(time.perf_counter() - t)
                assert response.status == 200, answer
        # The service's drain moves each write's pending change into history, summaries and the outbox
        # in the background: show that it keeps up, by how long after the last write nothing is pending.
        last_write = time.perf_counter()
        while await db["annotations"].find_one({"pending_n": {"$gt": 0}}, {"_id": 1}):
            await asyncio.sleep(0.01)
        caught_up = time.perf_counter() - last_write
    finally:
        service.stop()
    return creates, updates, caught_up


@asynccontextmanager
async def bench_app(settings: AnnotationSettings) -> AsyncIterator[tuple[web.Application, Path]]:
    """The annotation app in this process, on a database of its own, and a folder for a service process's
    log; everything they made is dropped at the end."""
    log_dir = Path(tempfile.mkdtemp(prefix="bench-annotation-"))
    client = TestClient(TestServer(await init_app(settings)))
    await client.start_server()
    try:
        yield client.server.app, log_dir
    finally:
        await client.close()
        await remove_test_data(settings)
        shutil.rmtree(log_dir, ignore_errors=True)


async def main() -> None:
    run = uuid.uuid4().hex[:8]
    key = f"ick_bench_{run}"
    settings = AnnotationSettings(
        mongo_db=f"bench_annotation_{run}", amqp_exchange=f"bench-annotation-{run}", minio_bucket=f"bench-annotation-{run}",
        es_index_prefix=f"bench-annotation-{run}", admin_key=key, log_level="WARNING",
    )  # fmt: skip
    async with bench_app(settings) as (app, log_dir):
        image_ids = [uuid.uuid4().hex for _ in range(ANNOTATIONS // PER_IMAGE)]
        await load(app, image_ids)
        db, rng = app[MONGO], random.Random(3)

        baseline = []
        for n in range(SAMPLES):
            t = time.perf_counter()
            await db["bench_baseline"].insert_one({"n": n, "at": datetime.now(UTC)})
            baseline.append(time.perf_counter() - t)

        # The two operations through the service layer (no HTTP, in this process), to show where the time goes.
        deps, admin = app[DEPS], Principal("admin", "admin", Role.ADMIN)
        layer_creates, layer_updates = [], []
        for n in range(SAMPLES):
            item = {"image_id": rng.choice(image_ids), "type": "bbox", "label": f"class {rng.randrange(80)}", "bbox": [1, 2, 30, 40]}
            t = time.perf_counter()
            [result] = await create_many(deps, "bench", [item])
            layer_creates.append(time.perf_counter() - t)
            t = time.perf_counter()
            await service.update(deps, admin, result["id"], AnnotationPatch(score=0.25), 1)
            layer_updates.append(time.perf_counter() - t)
        await drain_everything(db)
        await deps.pending.stop()  # only the service process (and its drain process) write from here on

        sample = [doc["_id"] for doc in await (await db["annotations"].aggregate([{"$sample": {"size": SAMPLES}}])).to_list()]
        creates, updates, caught_up = await http_phase(settings, key, image_ids, sample, log_dir, db)

        total = await db["annotations"].count_documents({})
        print(f"database: {total:,} annotations")
        print(f"baseline  insert_one (MongoDB)           {percentiles(baseline)}")
        print(f"create    POST /v1/annotations           {percentiles(creates)}")
        print(f"update    PATCH with If-Match + history  {percentiles(updates)}")
        print(f"create    service layer (no HTTP)        {percentiles(layer_creates)}")
        print(f"update    service layer (no HTTP)        {percentiles(layer_updates)}")
        history = await db["annotation_history"].count_documents({})
        versions = (await (await db["annotations"].aggregate([{"$group": {"_id": None, "n": {"$sum": "$version"}}}])).to_list())[0]["n"]
        print(f"drain     nothing pending {caught_up * 1000:.0f} ms after the last write; "
              f"history entries {history:,} = versions {versions:,}: {'yes' if history == versions else 'NO'}")  # fmt: skip
        p95 = max(statistics.quantiles(creates, n=100)[94], statistics.quantiles(updates, n=100)[94]) * 1000
        print(f"target p95 < 20 ms: {'met' if p95 < 20 else 'NOT met'} (worst p95 {p95:.2f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
