"""Ingest settings (environment, prefix ``CORPUS_``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from shared.settings import CorpusSettings


class IngestSettings(CorpusSettings):
    service_name: str = "ingest"
    port: int = 8001
    # Largest single file accepted; larger uploads answer 413 (a file in a batch gets a 413 result).
    max_upload_bytes: int = Field(default=64 * 1024**2, ge=1)
    # Largest batch request (all its files together).
    max_batch_bytes: int = Field(default=1024**3, ge=1)
    # Decoded pixel budget per image: a "decompression bomb" above it is refused before decoding.
    max_pixels: int = Field(default=100_000_000, ge=1)
    # Animated or multi-page files: only the first frame is decoded; files with more frames are refused.
    max_frames: int = Field(default=1000, ge=1)
    # Worker processes for decoding and hashing; None means one per core.
    cpu_workers: int | None = Field(default=None, ge=1)
    # Per-image bounds in the worker: wall time (the worker is recycled when it overruns) and address space.
    probe_timeout_seconds: float = Field(default=30.0, gt=0)
    worker_memory_bytes: int = Field(default=3 * 1024**3, ge=256 * 1024**2)
    # Images processed at once per request / import (back-pressure on memory and the pool).
    concurrency: int = Field(default=8, ge=1)
    # Most images stored together (one lookup, one transaction): a batch upload's group, an import chunk's,
    # or single arrivals that waited while earlier groups were stored.
    store_group: int = Field(default=32, ge=1)

    # Policy.
    min_width: int = Field(default=1, ge=1)
    min_height: int = Field(default=1, ge=1)
    max_width: int = Field(default=50_000, ge=1)
    max_height: int = Field(default=50_000, ge=1)
    allowed_formats: list[str] = ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]
    # Also store a copy in a standard format (EXIF orientation applied, no metadata): none, jpeg or png.
    standard_copy: Literal["none", "jpeg", "png"] = "none"
    thumbnail_side: int = Field(default=256, ge=16, le=2048)
    # Optional content filter (off by default); nudenet needs the content-filter extra installed.
    content_filter: Literal["none", "nudenet"] = "none"
    content_filter_threshold: float = Field(default=0.6, gt=0, le=1)
    content_filter_classes: list[str] = ["FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED", "ANUS_EXPOSED"]

    # Near-duplicates: pHash Hamming radius (0 turns the check off) and what to do with one.
    near_duplicate_radius: int = Field(default=4, ge=0, le=15)
    near_duplicate_policy: Literal["link", "reject"] = "link"

    # Fetching by URL: caps, and networks trusted despite being non-public (e.g. "10.1.2.0/24").
    fetch_max_bytes: int = Field(default=64 * 1024**2, ge=1)
    fetch_timeout_seconds: float = Field(default=30.0, gt=0)
    # How long one delivery of an image.submitted holds its source_event_id before another may take it over
    # (a consumer that died mid-way); the live process renews its claims every third of it.
    submission_lease_seconds: float = Field(default=30.0, gt=0)
    fetch_max_redirects: int = Field(default=3, ge=0, le=10)
    fetch_allow_networks: list[str] = []

    # Consume image.submitted from the bus (turn off for a replica that should only serve HTTP).
    consume_submissions: bool = True
    # How long a submission's record (what came of a source_event_id) is kept: a re-send of the event within
    # it is acked as a repeat; one after it is taken again (and found a duplicate by its SHA-256).
    submission_retention_days: float = Field(default=90, ge=0)

    # Dataset imports: folders the server may read from (nothing is importable until set).
    import_roots: list[Path] = []
    import_lease_seconds: float = Field(default=30.0, gt=0)
    import_poll_seconds: float = Field(default=1.0, gt=0)
    import_chunk: int = Field(default=32, ge=1)
    # How long a finished import's per-file records are kept (its counts stay on the job for good).
    import_items_retention_days: float = Field(default=7, ge=0)
    # Imports from an uploaded archive (POST /v1/imports:upload): the archive is kept in the object store
    # under imports/ until its job ends, and unpacked into this folder by whichever process runs the job.
    import_staging_dir: Path = Path(tempfile.gettempdir()) / "image-corpus-imports"
    import_archive_max_bytes: int = Field(default=10 * 1024**3, ge=1024)
    import_archive_max_expanded_bytes: int = Field(default=40 * 1024**3, ge=1024)
    import_archive_max_members: int = Field(default=2_000_000, ge=1)
    # Orphan blobs (left by a crash between a blob write and its document) are removed this often, by one
    # replica per round (0: only by `corpus ingest orphans --delete`); blobs younger than the grace are kept.
    orphan_sweep_seconds: float = Field(default=24 * 3600, ge=0)
    orphan_grace_seconds: float = Field(default=3600, ge=0)
