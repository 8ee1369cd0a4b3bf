"""``make bench-search``: filter, text, facet, deep-page and near-duplicate queries at one million images.

Loads 1,000,000 synthetic image documents (``benchmarks.search_corpus``)
into a dedicated index (alias ``bench-images``) with the service's own
projection and bulk path, then starts the search service as a process on
that index and measures, over HTTP with an aiohttp client (auth, parameter
checks, Elasticsearch, JSON), and Elasticsearch's own ``took`` for the same
bodies:

- filter / full-text queries (p50, p95), facet queries (p95),
- page 1,000 through a cursor (p95),
- near-duplicate queries (p50) and their recall against a brute-force scan.

The loaded index is kept between runs (reloaded only when its size or
mapping version differs): ``BENCH_SEARCH_DOCS`` sets the size,
``BENCH_SEARCH_RELOAD=1`` forces a reload.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from typing import Any

import aiohttp
import numpy as np

from benchmarks.search_corpus import TAG_WORDS, documents, hashes, image_id, label_names
from services.search.adapters.index import ImageIndex
from services.search.adapters.mapping import MAPPING_VERSION
from services.search.config import SearchSettings
from services.search.domain.cursor import Cursor, encode_cursor, filter_fingerprints
from services.search.domain.documents import project
from services.search.domain.params import parse_params
from services.search.domain.query import build_search
from shared.clients.elastic import elastic_client

DOCS = int(os.environ.get("BENCH_SEARCH_DOCS", 1_000_000))
SEED = 42
PORT = 8093
KEY = "ick_bench_search_admin_key"
SETTINGS = SearchSettings(
    es_index_prefix="bench", mongo_db="bench_search", amqp_exchange="bench-search", port=PORT, admin_key=KEY
)
CHUNK = 2000
SAMPLES = 300


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def load(index: ImageIndex) -> None:
    es = index.es
    current = await es.options(ignore_status=404).indices.get_alias(name=index.alias)
    if current.meta.status == 200 and os.environ.get("BENCH_SEARCH_RELOAD") != "1":
        names = list(current.body)
        if len(names) == 1 and names[0].startswith(index.index) and await index.count() == DOCS:
            print(f"using the cached index {names[0]} ({DOCS:,} documents)")
            return
    started = time.perf_counter()
    target = await index.create_build_index()
    queue: asyncio.Queue = asyncio.Queue(maxsize=4)

    async def writer() -> None:
        while (actions := await queue.get()) is not None:
            await index.bulk_upsert(actions, target=target)

    writers = [asyncio.create_task(writer()) for _ in range(3)]
    batch, done = [], 0
    for image, summary in documents(DOCS, SEED):
        batch.append((image["_id"], *project(image, summary)))
        if len(batch) == CHUNK:
            await queue.put(batch)
            done += len(batch)
            batch = []
            if done % 100_000 == 0:
                print(f"  loaded {done:,} in {time.perf_counter() - started:.0f} s", flush=True)
    await queue.put(batch)
    for _ in writers:
        await queue.put(None)
    await asyncio.gather(*writers)
    await index.finish_build(target)
    await es.options(request_timeout=3600).indices.forcemerge(index=target, max_num_segments=1)
    await index.drop(await index.switch_alias(target))
    print(f"loaded {DOCS:,} documents into {target} in {time.perf_counter() - started:.0f} s")


def filter_queries(rng: random.Random, labels: list[str]) -> list[dict[str, str]]:
    top = labels[:20]
    makers = [
        lambda: {"labels": rng.choice(top)},
        lambda: {"labels": f"{rng.choice(top)},{rng.choice(labels)}", "formats": "jpeg"},
        lambda: {"labels_all": f"{rng.choice(top)},{rng.choice(top)}"},
        lambda: {"labels": rng.choice(top), "labels_none": rng.choice(top), "min_width": "1000"},
        lambda: {"tags": rng.choice(TAG_WORDS), "sort": "-megapixels"},
        lambda: {"q": rng.choice(TAG_WORDS)},
        lambda: {"q": f"{rng.choice(TAG_WORDS)} {rng.choice(top)}"},
        lambda: {"q": rng.choice(labels), "sort": "relevance"},
        lambda: {"sources": f"source-{rng.randrange(20)}", "created_from": f"202{rng.randrange(2, 5)}-0{rng.randrange(1, 10)}-01"},
        lambda: {"uploaders": f"user-{rng.randrange(500)}"},
        lambda: {"min_megapixels": "2", "max_megapixels": "13", "has_annotations": "true", "sort": "captured_at"},
        lambda: {"formats": "png,webp", "min_aspect": "1.2", "captured_from": "2020-01-01", "captured_to": "2023-12-31"},
        lambda: {"near_duplicate": "true", "labels": rng.choice(top)},
        lambda: {"annotation_types": "bbox", "has_annotations": "true", "tags": rng.choice(TAG_WORDS)},
        lambda: {},
    ]
    return [rng.choice(makers)() for _ in range(SAMPLES)]


async def timed_get(http: aiohttp.ClientSession, path: str, params: dict[str, str]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    async with http.get(f"http://127.0.0.1:{PORT}{path}", params=params) as response:
        body = await response.json()
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status == 200, body
    return elapsed, body


async def es_took(es, params: dict[str, str]) -> int:
    body = build_search(parse_params(params, default_limit=20, max_limit=100), total_hits_cap=SETTINGS.total_hits_cap)
    return (await es.search(index="bench-images", **body))["took"]


async def deep_cursor(es, params: dict[str, str], page: int = 1000, limit: int = 20) -> str | None:
    """The cursor of page ``page`` (the sort values of the hit just before it), found through Elasticsearch."""
    parsed = parse_params(params, default_limit=limit, max_limit=10_000)
    position = (page - 1) * limit  # hits before the page
    after = None
    while position > 0:
        size = min(position, 10_000)
        body = build_search(parsed.model_copy(update={"limit": size}), after=after, total_hits_cap=False)
        body["_source"] = False
        hits = (await es.search(index="bench-images", **body))["hits"]["hits"]
        if len(hits) < size:
            return None
        after, position = hits[-1]["sort"], position - size
    return encode_cursor(Cursor(sort=parsed.sort, after=after, filters=filter_fingerprints(parsed)))


def start_service() -> subprocess.Popen:
    env = {**os.environ, **{f"CORPUS_{k.upper()}": str(v) for k, v in {
        "es_index_prefix": SETTINGS.es_index_prefix, "mongo_db": SETTINGS.mongo_db, "amqp_exchange": SETTINGS.amqp_exchange,
        "port": PORT, "admin_key": KEY, "log_level": "WARNING"}.items()}}
    return subprocess.Popen([sys.executable, "-m", "services.search"], env=env)


async def wait_ready(http: aiohttp.ClientSession, proc: subprocess.Popen) -> float:
    started = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise RuntimeError("the search service exited")
        try:
            async with http.get(f"http://127.0.0.1:{PORT}/readyz") as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.5)


def row(name: str, http_ms: list[float], took_ms: list[float] | None, extra: str = "") -> None:
    took = f"  ES took p50 {pct(took_ms, 50):6.1f} p95 {pct(took_ms, 95):6.1f}" if took_ms else ""
    print(f"{name:<22} n={len(http_ms):<4} HTTP p50 {pct(http_ms, 50):6.1f} ms  p95 {pct(http_ms, 95):6.1f} ms{took}{extra}")


async def measure(es, http: aiohttp.ClientSession) -> None:
    rng = random.Random(7)
    labels = label_names()
    queries = filter_queries(rng, labels)
    # Steady state, not the minutes after a restart: warm the JVM's JIT and the caches with a pass of
    # other queries from the same generator (a different seed), the way a running service has them.
    for params in filter_queries(random.Random(8), labels):
        await timed_get(http, "/v1/search", params)
        await timed_get(http, "/v1/search", {**params, "facets": "labels,tags,formats,sources,resolution,created"})
    http_ms, took = [], []
    for params in queries:
        elapsed, _ = await timed_get(http, "/v1/search", params)
        http_ms.append(elapsed)
        took.append(await es_took(es, params))
    row("filter/text", http_ms, took)

    facet_ms, facet_took = [], []
    for params in queries[:100]:
        params = {**params, "facets": "labels,tags,formats,sources,resolution,created"}
        elapsed, _ = await timed_get(http, "/v1/search", params)
        facet_ms.append(elapsed)
        facet_took.append(await es_took(es, params))
    row("facets (all six)", facet_ms, facet_took)

    # Page 1,000 on the default order (newest first, nearly unique values), then on a sort with
    # only a dozen distinct values (ties broken by id: the cost grows with the tie group).
    for name, sort in (("page 1,001 -created_at", "-created_at"), ("page 1,001 -megapixels", "-megapixels")):
        deep_ms = []
        filters = [{}, {"formats": "jpeg"}, {"labels": labels[0]}, {"has_annotations": "true"}, *({"tags": t} for t in TAG_WORDS[:4])]
        for n in range(24):
            params = {**filters[n % len(filters)], "sort": sort}
            cursor = await deep_cursor(es, params)
            if cursor:
                # Page 1,000 opens a snapshot (as page 2 does); page 1,001 reads it, as every later page does.
                _, first = await timed_get(http, "/v1/search", {**params, "cursor": cursor})
                elapsed, body = await timed_get(http, "/v1/search", {**params, "cursor": first["next"]})
                assert len(body["items"]) == 20
                deep_ms.append(elapsed)
        row(name, deep_ms, None)

    phash, _, of = hashes(DOCS, SEED)
    dups = np.flatnonzero(of >= 0)
    picks = [int(i) for i in rng.sample(list(dups), SAMPLES // 2)] + [rng.randrange(DOCS) for _ in range(SAMPLES // 2)]
    near_ms, answers, recalls, scan_ms, found_total = [], [], [], [], 0
    for i in picks:  # timed first; the brute-force checks below would evict the service's index from the CPU cache
        elapsed, body = await timed_get(http, f"/v1/images/{image_id(i)}/similar", {"radius": "8"})
        near_ms.append(elapsed)
        answers.append(body)
    for i, body in zip(picks, answers, strict=True):
        started = time.perf_counter()
        distances = np.bitwise_count(phash ^ phash[i])
        truth = {image_id(int(j)) for j in np.flatnonzero(distances <= 8) if j != i}
        scan_ms.append((time.perf_counter() - started) * 1000)
        found = {item["image_id"] for item in body["items"]}
        found_total += len(truth)
        recalls.append(len(found & truth) / len(truth) if truth else float(not found))
    row("near-duplicate r=8", near_ms, None, f"  recall {min(recalls):.3f} (min) over {found_total} true neighbours; numpy brute force p50 {pct(scan_ms, 50):.1f} ms")


async def main() -> None:
    es = elastic_client(SETTINGS)
    index = ImageIndex(es, SETTINGS.es_index_prefix)
    try:
        await load(index)
        proc = start_service()
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
                ready = await wait_ready(http, proc)
                print(f"search service ready in {ready:.1f} s (similarity index of {DOCS:,} hashes loaded from the index)")
                print(f"mapping v{MAPPING_VERSION}, {DOCS:,} documents, {SAMPLES} varied queries per row; targets: filter/text p50 < 10 ms, p95 < 30 ms; facets p95 < 100 ms; near-duplicate p50 < 5 ms with recall 1.0")
                await measure(es, http)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    finally:
        await es.close()


if __name__ == "__main__":
    asyncio.run(main())
