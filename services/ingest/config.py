"""Ingest settings (environment, prefix ``CORPUS_``)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CorpusSettings


class IngestSettings(CorpusSettings):
    service_name: str = "ingest"
    port: int = 8001
    # Largest single file accepted; larger uploads answer 413.
    max_upload_bytes: int = Field(default=64 * 1024**2, ge=1)
    # Decoded pixel budget per image: a "decompression bomb" above it is refused before decoding.
    max_pixels: int = Field(default=100_000_000, ge=1)
    # Worker processes for decoding and hashing; None means one per core.
    cpu_workers: int | None = Field(default=None, ge=1)
