"""Search settings (environment, prefix ``CORPUS_``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from services.search.domain.durations import duration_seconds
from shared.settings import CorpusSettings


class SearchSettings(CorpusSettings):
    service_name: str = "search"
    port: int = 8003
    # Single-node stack: no replicas (they could never be allocated).
    es_replicas: int = Field(default=0, ge=0)
    es_shards: int = Field(default=1, ge=1)
    page_size_default: int = Field(default=20, ge=1)
    page_size_max: int = Field(default=100, ge=1)
    # Totals are exact up to this many hits, then reported as a lower bound ("total_relation": "gte").
    total_hits_cap: int = Field(default=10_000, ge=1)
    facet_size: int = Field(default=20, ge=1, le=1000)
    # How long a cursor's snapshot (point in time) lives between two pages; an index a reindex replaced is
    # kept at least this long for the snapshots opened on it.
    cursor_keep_alive: str = "5m"
    # Snapshots one caller may have opened within a keep-alive; opening one more closes its oldest.
    cursor_snapshots_per_caller: int = Field(default=16, ge=1)
    # Similarity: Hamming radius (bits of 64) by default and at most; results per answer at most.
    similar_radius_default: int = Field(default=10, ge=0, le=64)
    similar_radius_max: int = Field(default=24, ge=0, le=64)
    similar_limit_max: int = Field(default=1000, ge=1)
    # Seconds between catch-ups of the in-memory hash index with what other replicas indexed.
    similarity_refresh_seconds: float = Field(default=5.0, gt=0)
    hash_workers: int = Field(default=1, ge=1)
    # Events are projected in bulk: up to this many images, waiting at most this long to fill a batch.
    projection_batch: int = Field(default=500, ge=1)
    projection_wait_seconds: float = Field(default=0.02, ge=0)
    annotations_in_detail: int = Field(default=1000, ge=0)
    # Where the admin page (GET /admin, served here) finds the other services, as a browser reaches them.
    admin_ingest_url: str = "http://127.0.0.1:8001"
    admin_annotation_url: str = "http://127.0.0.1:8002"
    # Largest query image POST /v1/search/similar accepts.
    max_query_image_bytes: int = Field(default=20 * 1024**2, ge=1024)

    @field_validator("cursor_keep_alive")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        duration_seconds(value)  # a service that could not keep its cursors fails at start, not on page 2
        return value
