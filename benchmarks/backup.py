"""``make bench-backup``: how fast a snapshot is taken, checked and restored, beside the bare read rates.

The corpus: the 128 COCO photos as 2,048 distinct variants (as in the ingest
benchmark), each probed by ingest's own code for its thumbnail and stored
(original + thumbnail: 4,096 objects, ~200 MB); their image documents and
summaries; and, for scale, ``CORPUS_BENCH_BACKUP_ANNOTATIONS`` (200,000)
synthetic box annotations on them, each with one history entry. It measures,
in the same run:

- the baselines: every document read through a raw-BSON cursor (no
  writing), every object fetched into memory (no writing);
- ``take_snapshot`` (documents and objects phases apart), then a second one
  of the unchanged corpus (the incremental case), a deep ``verify``, and
  ``restore_snapshot`` into empty stores (without the reindex, which the
  search benchmark measures).

Everything it made is removed at the end. No target: the numbers say how
long a backup window a corpus of a given size needs.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.ingest import VARIANTS_PER_PHOTO, coco_images, make_variant
from benchmarks.search_corpus import documents as synthetic_images
from services.cli.snapshots.repository import Repository
from services.cli.snapshots.restore import restore_snapshot
from services.cli.snapshots.take import RAW, take_snapshot
from services.cli.snapshots.verify import verify_snapshot
from services.ingest.domain.probe import probe_image
from shared.clients.blobs import BlobStore, original_key, thumbnail_key
from shared.clients.mongo import database, mongo_client
from shared.readmodels import ANNOTATION_SUMMARIES, IMAGES
from shared.settings import CorpusSettings
from tests.stack import remove_test_data

ANNOTATIONS = int(os.environ.get("CORPUS_BENCH_BACKUP_ANNOTATIONS", "200000"))
BATCH = 5_000
IN_FLIGHT = 16


def probed(path: Path) -> tuple[bytes, dict]:
    data = path.read_bytes()
    facts = probe_image(data, 100_000_000)
    return data, {k: facts[k] for k in ("sha256", "format", "mime", "width", "height", "thumbnail", "phash", "dhash", "bytes")}


def _annotations(image_ids: list[str], n: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    labels = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(80)]
    states, history = [], []
    for _ in range(n):
        state = {
            "_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "image_id": rng.choice(image_ids),
            "type": "bbox",
            "label_id": rng.choice(labels),
            "bbox": [rng.uniform(0, 600), rng.uniform(0, 400), rng.uniform(5, 200), rng.uniform(5, 200)],
            "score": rng.random(),
            "attributes": {"occluded": rng.random() < 0.2},
            "version": 1,
            "deleted": False,
            "created_by": "bench",
            "created_at": now,
            "updated_by": "bench",
            "updated_at": now,
        }
        states.append(state)
        history.append({
            "_id": f"{state['_id']}:1", "annotation_id": state["_id"], "image_id": state["image_id"], "version": 1,
            "action": "created", "changed_by": "bench", "changed_at": now, "state": dict(state), "changes": {"created": True},
        })
    return states, history


async def build(settings: CorpusSettings, files: list[Path]) -> tuple[int, int]:
    """Store the corpus; return (documents, object bytes)."""
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        results = list(pool.map(probed, files, chunksize=16))
    blobs, client = BlobStore(settings), mongo_client(settings)
    db = database(client, settings)
    try:
        await blobs.ensure_bucket()
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def put(data: bytes, facts: dict) -> None:
            async with gate:
                await blobs.put(original_key(facts["sha256"]), data, facts["mime"], sha256=facts["sha256"])
                await blobs.put(thumbnail_key(facts["sha256"]), facts["thumbnail"], "image/jpeg")

        await asyncio.gather(*(put(data, facts) for data, facts in results))
        images, summaries = [], []
        for (data, facts), (image, summary) in zip(results, synthetic_images(len(results)), strict=True):
            image.update({k: v for k, v in facts.items() if k != "thumbnail"}, _id=facts["sha256"], thumbnail=True)
            images.append(image)
            if summary:
                summaries.append(dict(summary, _id=facts["sha256"]))
        await db[IMAGES].insert_many(images)
        if summaries:
            await db[ANNOTATION_SUMMARIES].insert_many(summaries)
        states, history = _annotations([i["_id"] for i in images], ANNOTATIONS)
        for name, docs in (("annotations", states), ("annotation_history", history)):
            for start in range(0, len(docs), BATCH):
                await db[name].insert_many(docs[start : start + BATCH], ordered=False)
        await db["annotation_history"].create_index([("annotation_id", 1), ("version", 1)], unique=True)
        object_bytes = sum(len(data) + len(facts["thumbnail"]) for data, facts in results)
        return len(images) + len(summaries) + 2 * ANNOTATIONS, object_bytes
    finally:
        await blobs.close()
        await client.close()


async def baselines(settings: CorpusSettings) -> tuple[float, float, int]:
    """Seconds to read every document (raw cursor) and to fetch every object into memory; the object count."""
    client, blobs = mongo_client(settings), BlobStore(settings)
    try:
        db = database(client, settings)
        started = time.perf_counter()
        for name in await db.list_collection_names():
            async for _ in db.get_collection(name, codec_options=RAW).find({}, batch_size=1000):
                pass
        read = time.perf_counter() - started
        started = time.perf_counter()
        keys = [obj.key async for page in blobs.inventory_pages() for obj in page]
        gate = asyncio.Semaphore(8)

        async def get(key: str) -> None:
            async with gate:
                await blobs.get(key)

        await asyncio.gather(*(get(k) for k in keys))
        return read, time.perf_counter() - started, len(keys)
    finally:
        await client.close()
        await blobs.close()


def _rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "-"


async def measure(source: CorpusSettings, target: CorpusSettings, repo: Repository, documents: int, object_bytes: int) -> None:
    read, fetched, objects = await baselines(source)
    mb = object_bytes / 1e6
    print(f"baseline: read {documents:,} documents in {read:.1f} s ({_rate(documents, read)}); fetched {objects:,} objects ({mb:.0f} MB) in {fetched:.1f} s ({_rate(objects, fetched)}, {mb / fetched:.0f} MB/s)")

    marks: dict[str, float] = {}

    def progress(phase: str, done: int, total: int | None) -> None:
        marks.setdefault(phase.split(":")[0], time.perf_counter())

    started = time.perf_counter()
    first = await take_snapshot(source, repo, progress=progress)
    ended = time.perf_counter()
    docs_s, objects_s = marks["objects"] - started, ended - marks["objects"]
    print(f"snapshot 1: {ended - started:.1f} s: documents {docs_s:.1f} s ({_rate(documents, docs_s)}), objects {objects_s:.1f} s ({_rate(first.copied, objects_s)}, {first.copied_bytes / 1e6 / objects_s:.0f} MB/s); copied {first.copied:,}")
    started = time.perf_counter()
    second = await take_snapshot(source, repo)
    print(f"snapshot 2 (nothing changed): {time.perf_counter() - started:.1f} s; copied {second.copied:,} objects")
    dumps = sum(c.bytes for c in second.collections)
    print(f"repository: {dumps / 1e6:.1f} MB of document dumps per snapshot (gzip), {object_bytes / 1e6:.0f} MB of blobs shared by both")
    started = time.perf_counter()
    report = verify_snapshot(repo)
    took = time.perf_counter() - started
    print(f"verify (deep): {took:.1f} s for {report.documents:,} documents and {report.objects:,} objects; {report.problem_count} problems")
    marks.clear()
    started = time.perf_counter()
    restored = await restore_snapshot(target, repo, progress=progress)
    ended = time.perf_counter()
    objects_s, docs_s = marks["documents"] - marks["objects"], ended - marks["documents"]
    print(
        f"restore: {ended - started:.1f} s: check {marks['objects'] - started:.1f} s, objects {objects_s:.1f} s "
        f"({_rate(restored.objects, objects_s)}, {object_bytes / 1e6 / objects_s:.0f} MB/s), documents with their indexes "
        f"{docs_s:.1f} s ({_rate(restored.documents, docs_s)})"
    )


def main() -> None:
    photos = coco_images()
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    run = uuid.uuid4().hex[:8]
    source = CorpusSettings(mongo_db=f"bench_{run}", minio_bucket=f"bench-{run}", es_index_prefix=f"bench-{run}", amqp_exchange=f"bench-{run}")
    target = CorpusSettings(mongo_db=f"bench_{run}_r", minio_bucket=f"bench-{run}-r", es_index_prefix=f"bench-{run}-r", amqp_exchange=f"bench-{run}-r")
    try:
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            files = list(pool.map(make_variant, [(p, n, work) for p in photos for n in range(VARIANTS_PER_PHOTO)], chunksize=16))
        started = time.perf_counter()
        documents, object_bytes = asyncio.run(build(source, files))
        print(f"corpus: {len(files):,} images (original + thumbnail each), {documents:,} documents; built in {time.perf_counter() - started:.0f} s", flush=True)
        asyncio.run(measure(source, target, Repository(work / "repo"), documents, object_bytes))
    finally:
        asyncio.run(remove_test_data(source))
        asyncio.run(remove_test_data(target))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
