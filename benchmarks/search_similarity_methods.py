"""How to answer "which images are within r bits of this 64-bit hash?": three methods, measured.

``python -m benchmarks.search_similarity_methods`` (``BENCH_SIMILARITY_DOCS``,
default 200,000) loads synthetic hashes (with planted near-duplicates, as in
``make bench-search``) into a scratch index with two Elasticsearch encodings,
then runs the same queries (radius 8) three ways and prints latency and recall
against a brute-force scan:

1. ``dense_vector`` with ``element_type: bit`` (HNSW, l2_norm = Hamming on
   bits) and a kNN query: approximate; this distribution has no painless, so
   an exact ``script_score`` scan is not available.
2. Multi-index hashing on keyword fields: 9 bands (8+7×8 bits), so any hash
   within 8 bits shares at least one band exactly (pigeonhole); candidates
   re-ranked by exact Hamming distance in Python.
3. The in-memory numpy popcount index the service uses (``HashIndex``).

The scratch index is deleted at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import numpy as np

from benchmarks.search_corpus import hashes
from services.search.domain.hash_index import HashIndex
from shared.clients.elastic import elastic_client
from shared.settings import CorpusSettings

DOCS = int(os.environ.get("BENCH_SIMILARITY_DOCS", 200_000))
RADIUS = 8
QUERIES = 200
WIDTHS = [8] + [7] * 8
INDEX = f"bench-similarity-methods-{os.getpid()}"


def bands(value: int) -> dict[str, str]:
    out, shift = {}, 0
    for n, width in enumerate(WIDTHS):
        out[f"b{n}"] = f"{n}:{(value >> shift) & ((1 << width) - 1)}"
        shift += width
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def main() -> None:
    es = elastic_client(CorpusSettings())
    phash, _, of = hashes(DOCS, 42)
    props = {f"b{n}": {"type": "keyword"} for n in range(len(WIDTHS))}
    props |= {"bits": {"type": "dense_vector", "dims": 64, "element_type": "bit", "index": True, "similarity": "l2_norm"}, "h": {"type": "keyword", "index": False}}
    await es.indices.create(index=INDEX, mappings={"properties": props}, settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"})
    try:
        started = time.perf_counter()
        for start in range(0, DOCS, 5000):
            ops = []
            for i in range(start, min(start + 5000, DOCS)):
                value = int(phash[i])
                ops += [{"index": {"_id": str(i)}}, {"bits": f"{value:016x}", "h": f"{value:016x}", **bands(value)}]
            await es.bulk(index=INDEX, operations=ops)
        await es.indices.put_settings(index=INDEX, settings={"index": {"refresh_interval": None}})
        await es.indices.refresh(index=INDEX)
        await es.options(request_timeout=3600).indices.forcemerge(index=INDEX, max_num_segments=1)
        print(f"{DOCS:,} hashes indexed (HNSW + 9 band keywords) in {time.perf_counter() - started:.0f} s")

        memory = HashIndex(DOCS)
        for i in range(DOCS):
            memory.upsert(str(i), {"phash": int(phash[i])})
        rng = random.Random(3)
        dups = np.flatnonzero(of >= 0)
        picks = [int(i) for i in rng.sample(list(dups), QUERIES // 2)] + [rng.randrange(DOCS) for _ in range(QUERIES // 2)]
        results: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in ("knn k=50 nc=500", "bands + re-rank", "in-memory numpy")}
        for i in picks:
            value = int(phash[i])
            truth = {str(j) for j in np.flatnonzero(np.bitwise_count(phash ^ phash[i]) <= RADIUS)}

            def record(method: str, found: set[str], ms: float) -> None:
                results[method][0].append(ms)
                results[method][1].append(len(found & truth) / len(truth))

            t = time.perf_counter()
            r = await es.search(index=INDEX, knn={"field": "bits", "query_vector": f"{value:016x}", "k": 50, "num_candidates": 500}, source=["h"], size=50)
            found = {h["_id"] for h in r["hits"]["hits"] if bin(int(h["_source"]["h"], 16) ^ value).count("1") <= RADIUS}
            record("knn k=50 nc=500", found, (time.perf_counter() - t) * 1000)

            t = time.perf_counter()
            should = [{"term": {k: v}} for k, v in bands(value).items()]
            r = await es.search(index=INDEX, query={"bool": {"should": should}}, source=["h"], size=10000, track_total_hits=False)
            found = {h["_id"] for h in r["hits"]["hits"] if bin(int(h["_source"]["h"], 16) ^ value).count("1") <= RADIUS}
            record("bands + re-rank", found, (time.perf_counter() - t) * 1000)

            t = time.perf_counter()
            found = {image_id for image_id, _ in memory.query(value, "phash", radius=RADIUS)}
            record("in-memory numpy", found, (time.perf_counter() - t) * 1000)
        print(f"{QUERIES} queries at radius {RADIUS} over {DOCS:,} hashes (half of them planted near-duplicates):")
        for method, (ms, recall) in results.items():
            print(f"  {method:<18} p50 {pct(ms, 50):7.2f} ms  p95 {pct(ms, 95):7.2f} ms  recall mean {np.mean(recall):.3f} min {min(recall):.3f}")
    finally:
        await es.options(ignore_status=404).indices.delete(index=INDEX)
        await es.close()


if __name__ == "__main__":
    asyncio.run(main())
