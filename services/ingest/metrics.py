"""Ingest's own metrics: where the time of one image goes, and what became of it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

STAGE_SECONDS = Histogram(
    "corpus_ingest_stage_seconds",
    "Time per pipeline stage of one image (probe, lookup, blobs, transaction)",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OUTCOMES = Counter("corpus_ingest_outcomes_total", "Images by outcome and reason", ["outcome", "reason"])


@contextmanager
def timed(stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage=stage).observe(time.perf_counter() - start)
