"""``make bench-annotation-export``: repeated COCO, YOLO and VOC exports of a few thousand images, and the service's memory.

Loads the COCO sample (``../shared/data/coco128``, or ``CORPUS_TEST_DATA``) ``COPIES`` times (30: 3,840
images, 28,170 polygons and RLE masks) through the import handler into a dedicated database (each copy an
image document of its own over the sample's photo in MinIO, under a file name of its own), starts the
annotation service as its own process (as deployed), and asks it for the whole selection by image ids,
``ROUNDS`` times in each of ``FORMATS`` (COCO, YOLO, VOC). Prints, after each export, its time, the zip's
size and the service's resident memory (RSS, the drain process not counted): an export that builds its
annotation files at once raises it from one export to the next; one written page by page does not.
Everything it made is dropped at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import time
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from benchmarks.annotation import bench_app
from benchmarks.ingest import rss_mb
from services.annotation.config import AnnotationSettings
from services.annotation.deps import DEPS
from services.annotation.handlers import handlers
from shared.clients.blobs import original_key
from shared.events import AnnotationsImported, Envelope
from shared.readmodels import IMAGES
from shared.web.resources import BLOBS, MONGO
from tests.integration.annotation import coco_events
from tests.photos import coco_dir
from tests.processes import ServiceProcess

COPIES = int(os.environ.get("CORPUS_BENCH_EXPORT_COPIES", "30"))  # of the 128-image sample
ROUNDS = int(os.environ.get("CORPUS_BENCH_EXPORT_ROUNDS", "8"))
FORMATS = os.environ.get("CORPUS_BENCH_EXPORT_FORMATS", "coco,yolo,voc").split(",")


async def load(app, coco: Path) -> list[str]:
    """The sample ``COPIES`` times: image documents of their own, the sample's annotations on each, through
    the handler of ``annotations.imported`` (labels with the sample's category ids, validation, history)."""
    data, db, blobs = coco_events.load(coco), app[MONGO], app[BLOBS]
    await blobs.ensure_bucket()
    photos = {}
    for image in data["images"]:
        raw = (coco / "images" / image["file_name"]).read_bytes()
        photos[image["id"]] = hashlib.sha256(raw).hexdigest()
        await blobs.put(original_key(photos[image["id"]]), raw, "image/jpeg")
    on_imported = handlers(app[DEPS])[AnnotationsImported.event_type]
    started, image_ids = time.perf_counter(), []
    for copy in range(COPIES):
        ids = {image["id"]: uuid.uuid4().hex for image in data["images"]}
        await db[IMAGES].insert_many([
            {"_id": ids[image["id"]], "sha256": photos[image["id"]], "width": image["width"], "height": image["height"],
             "format": "JPEG", "mode": "RGB", "filename": f"{copy:02d}_{image['file_name']}", "created_at": datetime.now(UTC)}
            for image in data["images"]
        ])  # fmt: skip
        for event in coco_events.events(data, ids, "coco128"):
            await on_imported(Envelope.wrap(event, producer="bench"), event)
        image_ids += ids.values()
    count = await db["annotations"].count_documents({})
    print(f"loaded {len(image_ids):,} images, {count:,} annotations in {time.perf_counter() - started:.1f} s")
    return image_ids


async def exports(service: ServiceProcess, key: str, image_ids: list[str], fmt: str) -> None:
    """``ROUNDS`` exports of the selection, each read to its end, with the service's RSS after each."""
    async with aiohttp.ClientSession(service.url, headers={"Authorization": f"Bearer {key}"}) as http:
        for n in range(1, ROUNDS + 1):
            started, size = time.perf_counter(), 0
            async with http.post("/v1/exports", json={"format": fmt, "image_ids": image_ids}) as response:
                assert response.status == 200, await response.text()
                async for chunk in response.content.iter_chunked(1 << 20):
                    size += len(chunk)
            elapsed = time.perf_counter() - started
            own, _ = rss_mb(service.proc.pid)
            print(f"{fmt:<5} export {n}: {elapsed:6.2f} s  {size / 1e6:6.1f} MB zip  service RSS {own:6.1f} MB")


async def first_export(service: ServiceProcess, key: str, image_ids: list[str]) -> str:
    """One export, untimed (the service warms up), read back: what the selection comes to."""
    async with aiohttp.ClientSession(service.url, headers={"Authorization": f"Bearer {key}"}) as http:
        async with http.post("/v1/exports", json={"format": "coco", "image_ids": image_ids}) as response:
            body = await response.read()
    doc = zipfile.ZipFile(io.BytesIO(body)).read("annotations/instances.json")
    parsed = json.loads(doc)
    return f"instances.json {len(doc) / 1e6:.1f} MB: {len(parsed['images']):,} images, {len(parsed['annotations']):,} annotations"


async def main() -> None:
    coco = coco_dir()
    if coco is None:
        raise SystemExit("the COCO sample is not there: set CORPUS_TEST_DATA to the folder that holds coco128/")
    run = uuid.uuid4().hex[:8]
    key = f"ick_bench_{run}"
    names = {"mongo_db": f"bench_export_{run}", "amqp_exchange": f"bench-export-{run}", "minio_bucket": f"bench-export-{run}",
             "es_index_prefix": f"bench-export-{run}", "admin_key": key, "log_level": "WARNING"}  # fmt: skip
    settings = AnnotationSettings(**names)
    async with bench_app(settings) as (app, log_dir):
        image_ids = await load(app, coco)
        await app[DEPS].pending.stop()  # only the service process (and its drain process) write from here on
        env = {**os.environ, **{f"CORPUS_{k.upper()}": str(v) for k, v in names.items()}}
        service = ServiceProcess("annotation", env, log_dir)
        await service.start()
        try:
            print(f"service RSS at start {rss_mb(service.proc.pid)[0]:6.1f} MB")
            print(await first_export(service, key, image_ids))
            for fmt in FORMATS:
                await exports(service, key, image_ids, fmt)
        finally:
            service.stop()

if __name__ == "__main__":
    asyncio.run(main())
