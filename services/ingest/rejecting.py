"""Keeping every refusal: a ``rejections`` record and an ``image.rejected`` event, in one transaction.

A refusal in a dataset import has an id derived from (import, the item's origin URI): a job resumed
after a crash refuses its unrecorded items again, and finds their records there already instead of
adding a second one (and a second event)."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from pymongo.errors import DuplicateKeyError

from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.model import Origin
from services.ingest.metrics import OUTCOMES
from shared.events import Envelope, ImageRejected, utcnow

if TYPE_CHECKING:
    from services.ingest.service import IngestDeps, Submission

log = logging.getLogger(__name__)

IMPORT_REJECTION_NAMESPACE = uuid.UUID("0b6f2d5e-4c1a-4f3e-9a57-2d8e1c7b9f40")


def rejection_id(origin: Origin, key: str | None = None) -> str:
    """Derived from ``key``, or from (import, item) for an import's refusal, so a retry is the same record;
    random otherwise."""
    if key is not None:
        return str(uuid.uuid5(IMPORT_REJECTION_NAMESPACE, key))
    if origin.import_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(IMPORT_REJECTION_NAMESPACE, f"{origin.import_id}:{origin.uri}"))


async def record_rejection(deps: IngestDeps, submission: Submission, refused: ImageRefused, *, size: int | None = None) -> str:
    """Keep every rejection, with its reason, and announce it. Returns the rejection id.

    ``size``: the bytes sent, where the submission does not hold them (a file over the cap is not kept)."""
    return await reject(
        deps,
        refused,
        source=submission.source or submission.origin.uri,
        filename=submission.filename,
        origin=submission.origin,
        uploader=submission.uploader,
        size=len(submission.data) if size is None else size,
    )


async def reject(
    deps: IngestDeps,
    refused: ImageRefused,
    *,
    source: str | None,
    filename: str | None,
    origin: Origin,
    uploader: str | None = None,
    size: int | None = None,
    key: str | None = None,
) -> str:
    """Keep the refusal and announce it; ``key`` names what is refused when the same thing can come again (a
    parked message replayed), so it is kept once."""
    event = ImageRejected(
        rejection_id=rejection_id(origin, key),
        reason=refused.reason,
        message=refused.message,
        source=source,
        filename=filename,
        sha256=refused.sha256,
        rejected_at=utcnow(),
    )
    record = {
        "_id": event.rejection_id,
        **event.model_dump(exclude={"rejection_id"}),
        "bytes": size,
        "origin": origin.model_dump(),
        "uploader": uploader,
    }
    try:
        await deps.repository.add_rejection(record, Envelope.wrap(event, producer=deps.producer))
    except DuplicateKeyError:  # a resumed import refusing an item again, a replayed message refused again
        log.info("image rejection already recorded", extra={"reason": refused.reason, "file_name": filename})
        return event.rejection_id
    deps.relay.nudge()
    OUTCOMES.labels(outcome="rejected", reason=refused.reason).inc()
    log.info("image rejected", extra={"reason": refused.reason, "file_name": filename})
    return event.rejection_id
