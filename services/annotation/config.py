"""Annotation settings (environment, prefix ``CORPUS_``)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CorpusSettings


class AnnotationSettings(CorpusSettings):
    service_name: str = "annotation"
    port: int = 8002
    # Deliveries in hand at once: an import event can carry hundreds of polygons (one COCO image's), and 64
    # of them at once held the service's memory near 1 GB and its transactions past their bound.
    amqp_prefetch: int = Field(default=8, ge=1)
    # Largest request body: bulk requests carry thousands of annotations with polygons and masks.
    max_body_bytes: int = Field(default=64 * 1024**2, ge=1024)
    # Most annotations in one bulk request.
    bulk_max_items: int = Field(default=10_000, ge=1)
    # Worker processes for geometry checks (masks, polygons, large batches); None means one per core.
    cpu_workers: int | None = Field(default=None, ge=1)
    # Most images in one export archive.
    export_max_images: int = Field(default=5_000, ge=1)
    # After a write nudges the drain (pending changes → history, summaries, outbox), it waits this long so
    # a burst of writes is moved in one transaction. Reads of history never wait for it.
    pending_gather_seconds: float = Field(default=0.05, ge=0)
    # The drain process's CPU priority (added to the service's niceness, 0-19): on a busy machine its
    # background transactions yield the cores to requests, so edits are answered without waiting on it.
    drain_niceness: int = Field(default=10, ge=0, le=19)
    # The search service, asked which images an export by search query holds.
    search_url: str = "http://127.0.0.1:8003"
