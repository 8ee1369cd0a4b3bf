"""The ingest use cases: entry points call these, these call the domain and the adapters."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from services.ingest.adapters.cpu import CpuPool
from services.ingest.adapters.repository import ImageRepository
from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.model import ImageDocument, ImageFacts
from services.ingest.domain.probe import probe_image
from shared.clients.blobs import BlobStore, original_key
from shared.events import Envelope, ImageRejected, utcnow
from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestDeps:
    repository: ImageRepository
    blobs: BlobStore
    cpu: CpuPool
    relay: OutboxRelay
    producer: str
    max_pixels: int


@dataclass(frozen=True)
class Submission:
    data: bytes
    filename: str | None = None
    tags: tuple[str, ...] = ()
    source: str | None = None


async def ingest(deps: IngestDeps, submission: Submission) -> tuple[ImageDocument, bool]:
    """Store one image. Returns the document and whether it is new.

    Raises :class:`ImageRefused` (after recording the rejection) for bytes we do not accept.
    Order of writes: blob first (content-addressed, so a repeat is harmless), then the
    document and its event in one transaction. A crash between the two leaves an orphan
    blob that a retry reuses, never a document without its blob.
    """
    try:
        facts = ImageFacts.model_validate(await deps.cpu.run(probe_image, submission.data, deps.max_pixels))
    except ImageRefused as refused:
        await record_rejection(deps, submission, refused)
        raise

    existing = await deps.repository.get(facts.sha256)
    if existing is not None:
        return existing, False

    await deps.blobs.put(original_key(facts.sha256), submission.data, facts.mime)
    doc = ImageDocument(
        _id=facts.sha256,
        **facts.model_dump(),
        tags=list(submission.tags),
        source=submission.source,
        filename=submission.filename,
        created_at=utcnow(),
    )
    created = await deps.repository.add(doc, Envelope.wrap(doc.to_event(), producer=deps.producer))
    if not created:  # a concurrent upload of the same bytes won the race
        existing = await deps.repository.get(facts.sha256)
        assert existing is not None
        return existing, False
    deps.relay.nudge()
    log.info("image ingested", extra={"image_id": doc.id, "bytes": doc.bytes, "format": doc.format})
    return doc, True


async def record_rejection(deps: IngestDeps, submission: Submission, refused: ImageRefused) -> None:
    """Keep every rejection, with its reason, and announce it."""
    event = ImageRejected(
        rejection_id=str(uuid.uuid4()),
        reason=refused.reason,
        message=refused.message,
        source=submission.source,
        filename=submission.filename,
        sha256=refused.sha256,
        rejected_at=utcnow(),
    )
    record = {"_id": event.rejection_id, **event.model_dump(exclude={"rejection_id"}), "bytes": len(submission.data)}
    await deps.repository.add_rejection(record, Envelope.wrap(event, producer=deps.producer))
    deps.relay.nudge()
    log.info("image rejected", extra={"reason": refused.reason, "file_name": submission.filename})
