"""The ingest pipeline: every way in (upload, URL, upstream event, dataset import) ends here.

Order of work for one image: byte budget → probe in a worker (type sniffed,
pixel budget, full decode, SHA-256 and the sender's checksum, EXIF, pHash and
dHash, thumbnail) → policy → exact duplicate by SHA-256 → near duplicate by
pHash Hamming distance → blobs (original, thumbnail, standard copy) → the
document, its source record and its ``image.ingested`` event in one MongoDB
transaction. Every refusal is recorded (``rejections`` + ``image.rejected``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from services.ingest.adapters.cpu import CpuPool, WorkerCrashed, WorkerTimeout
from services.ingest.adapters.repository import ImageRepository, source_id
from services.ingest.config import IngestSettings
from services.ingest.domain.derivatives import STANDARD_MIME, standard_key
from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.hashes import bands, hamming
from services.ingest.domain.model import Exif, ImageDocument, ImageFacts, Origin
from services.ingest.domain.policy import Policy, check_facts, check_size
from services.ingest.domain.probe import probe_image
from services.ingest.metrics import OUTCOMES, timed
from services.ingest.rejecting import record_rejection
from shared.clients.blobs import BlobStore, original_key, thumbnail_key
from shared.events import Envelope, utcnow
from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)

Status = Literal["created", "duplicate"]


@dataclass(frozen=True)
class IngestDeps:
    repository: ImageRepository
    blobs: BlobStore
    cpu: CpuPool
    relay: OutboxRelay
    producer: str
    settings: IngestSettings

    @property
    def policy(self) -> Policy:
        s = self.settings
        return Policy(
            min_width=s.min_width,
            min_height=s.min_height,
            max_width=s.max_width,
            max_height=s.max_height,
            max_bytes=s.max_upload_bytes,
            allowed_formats=frozenset(f.upper() for f in s.allowed_formats),
        )


@dataclass(frozen=True)
class Submission:
    data: bytes
    filename: str | None = None
    tags: tuple[str, ...] = ()
    source: str | None = None
    origin: Origin = field(default_factory=Origin)
    uploader: str | None = None
    expected_sha256: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    doc: ImageDocument
    status: Status

    @property
    def created(self) -> bool:
        return self.status == "created"


async def ingest(deps: IngestDeps, submission: Submission) -> Outcome:
    """Store one image, or raise :class:`ImageRefused` after recording why."""
    try:
        return await _ingest(deps, submission)
    except ImageRefused as refused:
        await record_rejection(deps, submission, refused)
        raise


async def _ingest(deps: IngestDeps, submission: Submission) -> Outcome:
    settings, policy = deps.settings, deps.policy
    check_size(len(submission.data), policy)
    with timed("probe"):
        probed = await _probe(deps, submission)
    check_facts(probed, policy)
    facts = ImageFacts.model_validate(probed)
    source = _source_record(facts.sha256, submission)

    with timed("lookup"):
        existing = await deps.repository.get(facts.sha256)
        if existing is None:
            phash_bands = bands(facts.phash, settings.near_duplicate_radius) if settings.near_duplicate_radius else []
            near_id, near_distance = await _nearest(deps, facts, phash_bands)
    if existing is not None:
        await deps.repository.add_source(source)
        OUTCOMES.labels(outcome="duplicate", reason="").inc()
        return Outcome(existing, "duplicate")
    if near_id is not None and settings.near_duplicate_policy == "reject":
        raise ImageRefused(
            "near_duplicate",
            f"The image is a near-duplicate of image {near_id} (pHash distance {near_distance}).",
            sha256=facts.sha256,
        )

    standard = probed.get("standard")
    puts = [
        deps.blobs.put(original_key(facts.sha256), submission.data, facts.mime),
        deps.blobs.put(thumbnail_key(facts.sha256), probed["thumbnail"], "image/jpeg"),
    ]
    if standard is not None:
        puts.append(deps.blobs.put(standard_key(facts.sha256, settings.standard_copy), standard, STANDARD_MIME[settings.standard_copy]))
    with timed("blobs"):
        await asyncio.gather(*puts)

    doc = ImageDocument(
        _id=facts.sha256,
        **facts.model_dump(),
        phash_bands=phash_bands,
        tags=list(submission.tags),
        source=submission.source,
        filename=submission.filename,
        origin=submission.origin,
        uploader=submission.uploader,
        exif=Exif.model_validate(probed.get("exif") or {}),
        metadata=submission.metadata,
        thumbnail=True,
        standard_key=standard_key(facts.sha256, settings.standard_copy) if standard is not None else None,
        near_duplicate_of=near_id,
        near_duplicate_distance=near_distance,
        created_at=utcnow(),
    )
    with timed("transaction"):
        created = await deps.repository.add(doc, Envelope.wrap(doc.to_event(), producer=deps.producer), source)
    if not created:  # a concurrent upload of the same bytes won the race
        existing = await deps.repository.get(facts.sha256)
        assert existing is not None
        await deps.repository.add_source(source)
        return Outcome(existing, "duplicate")
    deps.relay.nudge()
    OUTCOMES.labels(outcome="created", reason="").inc()
    log.info("image ingested", extra={"image_id": doc.id, "bytes": doc.bytes, "format": doc.format})
    return Outcome(doc, "created")


async def _probe(deps: IngestDeps, submission: Submission) -> dict[str, Any]:
    settings = deps.settings
    try:
        return await deps.cpu.run(
            probe_image,
            submission.data,
            settings.max_pixels,
            expected_sha256=submission.expected_sha256,
            thumbnail_side=settings.thumbnail_side,
            standard_copy=settings.standard_copy,
            max_frames=settings.max_frames,
            content_filter=settings.content_filter,
            content_threshold=settings.content_filter_threshold,
            content_classes=tuple(settings.content_filter_classes),
            timeout=settings.probe_timeout_seconds,
        )
    except WorkerTimeout:
        raise ImageRefused(
            "timeout", f"Decoding took longer than {settings.probe_timeout_seconds:g} s; the image was abandoned."
        ) from None
    except WorkerCrashed:
        raise ImageRefused("undecodable", "The decoder crashed on these bytes; the image was abandoned.") from None
    except ImageRefused:
        raise
    except MemoryError:
        raise ImageRefused("too_large", "Processing the image needs more memory than a worker may use.") from None
    except Exception as exc:  # noqa: BLE001 - a decoder bug on odd bytes is this image's problem, not a 500
        log.warning("probe failed unexpectedly", exc_info=True)
        raise ImageRefused("undecodable", f"The image could not be processed: {type(exc).__name__}: {exc}.") from None


async def _nearest(deps: IngestDeps, facts: ImageFacts, phash_bands: list[str]) -> tuple[str | None, int | None]:
    if not phash_bands:
        return None, None
    radius = deps.settings.near_duplicate_radius
    best: tuple[int, str] | None = None
    for candidate in await deps.repository.near_candidates(phash_bands):
        distance = hamming(candidate["phash"], facts.phash)
        # dHash must agree too: two flat or blank images share a pHash without being the same picture.
        if distance <= radius and hamming(candidate["dhash"], facts.dhash) <= 2 * radius + 4:
            if best is None or (distance, candidate["_id"]) < best:
                best = (distance, candidate["_id"])
    return (best[1], best[0]) if best else (None, None)


def _source_record(image_id: str, submission: Submission) -> dict[str, Any]:
    origin = submission.origin
    return {
        "_id": source_id(image_id, origin),
        "image_id": image_id,
        **origin.model_dump(),
        "filename": submission.filename,
        "uploader": submission.uploader,
        "recorded_at": utcnow(),
    }
