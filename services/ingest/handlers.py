"""Message handlers: ``image.submitted`` from upstream producers.

Idempotent on the producer's ``source_event_id`` (a ``submissions`` record):
a redelivered or re-sent submission is taken once. The record is claimed
before the image is taken (status ``taking``, with a lease), so two deliveries
of one event handled at the same moment do not both store an image: the
second waits (retried as during an outage, no attempts counted) until the
first has finished, then acks as a repeat; a claim whose consumer died is
taken over once its lease runs out. A settled record is kept for
``submission_retention_days``; a re-send after that is taken again. A transient failure
(network, 5xx, storage unavailable) raises, so the bus retries it with
back-off and parks it after the last attempt, and a ``retries_exhausted``
rejection says so (a replay of the parked event is taken as new; a failure
retrying cannot change is parked at once, as ``not_retryable``); a permanent
one (blocked or missing URL, 404, undecodable bytes) is rejected with a
reason and acked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.ingest.adapters.fetcher import SafeFetcher
from services.ingest.adapters.retention import EXPIRES_AT, ensure_expiry_index, expires, expires_after
from services.ingest.adapters.s3 import ObjectUnavailable, S3Reader
from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.model import Origin
from services.ingest.fetching import ingest_url
from services.ingest.rejecting import reject
from services.ingest.service import IngestDeps, Outcome, Submission, ingest
from shared.background import PollingLoop
from shared.bus import Handler
from shared.events import AnnotationsImported, Envelope, EventData, ImageSubmitted, ImportedAnnotation, ImportedCategory, utcnow
from shared.naming import normalize_names
from shared.outages import DependencyUnavailable

log = logging.getLogger(__name__)

SUBMISSIONS = "submissions"
TAKING = "taking"  # a submission's status while one delivery is taking it
LABELS_NAMESPACE = uuid.UUID("0b8f4f7e-3f5d-4a4e-8f53-5b8e2d1c9a10")


class SubmissionBusy(DependencyUnavailable):
    """Another delivery of the same submission is being taken: wait for it, as for a store that is busy."""

    store = "another delivery of the same submission"


@dataclass(frozen=True)
class SubmissionHandler:
    deps: IngestDeps
    fetcher: SafeFetcher
    s3: S3Reader
    db: AsyncDatabase
    held: set[str] = field(default_factory=set)  # the claims this process holds, renewed while it lives
    # Whose claims they are: a process whose renewals stalled past the lease (MongoDB unreachable from it
    # alone) must neither renew nor free a claim a peer has taken over since.
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)

    def handlers(self) -> dict[str, Handler]:
        return {ImageSubmitted.event_type: self.handle}

    async def ensure_indexes(self) -> None:
        """The records' expiry, and an expiry for the settled records written before there was one."""
        submissions = self.db[SUBMISSIONS]
        await ensure_expiry_index(submissions)
        undated = {EXPIRES_AT: {"$exists": False}, "status": {"$ne": TAKING}, "at": {"$exists": True}}
        await submissions.update_many(undated, expires_after("at", self.deps.settings.submission_retention_days))

    def lease_keeper(self) -> PollingLoop:
        """Renews this process's claims every third of the lease, so a claim outlives a consumer that died by
        one lease at most (30 s), however long a fetch takes. With a fixed 120 s lease, the deliveries a
        killed process held came back to its successor, filled every prefetch slot waiting out the dead
        claims, and nothing else was taken for two minutes."""
        return PollingLoop("submission-leases", self._renew, poll_seconds=self.deps.settings.submission_lease_seconds / 3, wait_first=True)

    async def _renew(self) -> bool:
        if self.held:
            until = utcnow() + timedelta(seconds=self.deps.settings.submission_lease_seconds)
            await self.db[SUBMISSIONS].update_many(
                {"_id": {"$in": sorted(self.held)}, "status": TAKING, "owner": self.owner}, {"$set": {"lease_until": until}}
            )
        return False

    async def parked(self, envelope: Envelope, data: EventData, error: str, attempts: int) -> None:
        """The bus is parking the event (its last attempt failed, or a failure retrying cannot change): keep a
        rejection that says so."""
        assert isinstance(data, ImageSubmitted)
        where = _where(data)
        if attempts >= self.deps.settings.consume_attempts:
            reason, message = "retries_exhausted", (
                f"Taking {where} failed {attempts} times, the last with {error[:500]}. The event is parked on the "
                "dead-letter queue; `corpus bus replay ingest` takes it again once the source answers."
            )
        else:  # it used to say "failed 5 times" of an event tried once
            reason, message = "not_retryable", (
                f"Taking {where} failed with {error[:500]}, which retrying cannot change, so the event was parked "
                "on the dead-letter queue at the first attempt; `corpus bus replay ingest` takes it again once "
                "the cause is fixed."
            )
        refused = ImageRefused(reason, message, sha256=data.sha256)
        await reject(
            self.deps,
            refused,
            source=data.source.uri or where,
            filename=where.rsplit("/", 1)[-1] or None,
            origin=_origin(data, where),
            uploader=f"producer:{envelope.producer}",
        )

    async def handle(self, envelope: Envelope, data: EventData) -> None:
        assert isinstance(data, ImageSubmitted)
        if await self._claim(data.source_event_id) is not None:
            log.info("submission seen before", extra={"source_event_id": data.source_event_id})
            return
        self.held.add(data.source_event_id)
        try:
            await self._take(envelope, data)
        except BaseException:
            # Free the claim for the next attempt (a crash leaves it to expire instead).
            await self.db[SUBMISSIONS].delete_one({"_id": data.source_event_id, "status": TAKING, "owner": self.owner})
            raise
        finally:
            self.held.discard(data.source_event_id)

    async def _claim(self, event_id: str) -> dict[str, Any] | None:
        """None when this delivery now holds the submission; its record when it was taken before.

        Raises :class:`SubmissionBusy` while another delivery holds an unexpired claim on it."""
        now = utcnow()
        lease = {"status": TAKING, "owner": self.owner, "lease_until": now + timedelta(seconds=self.deps.settings.submission_lease_seconds)}
        try:
            await self.db[SUBMISSIONS].insert_one({"_id": event_id, **lease})
            return None
        except DuplicateKeyError:
            pass
        expired = {"_id": event_id, "status": TAKING, "lease_until": {"$lt": now}}
        if await self.db[SUBMISSIONS].find_one_and_update(expired, {"$set": lease}) is not None:
            return None  # its consumer died mid-way: taken over
        record = await self.db[SUBMISSIONS].find_one({"_id": event_id})
        if record is None or record.get("status") == TAKING:  # held (or just let go: the next attempt claims it)
            raise SubmissionBusy(f"another delivery of submission {event_id!r} is being taken")
        return record

    async def _take(self, envelope: Envelope, data: ImageSubmitted) -> None:
        where = _where(data)
        origin = _origin(data, where)
        template = Submission(
            b"",
            tags=tuple(normalize_names(data.tags)),
            source=data.source.uri or where,
            origin=origin,
            uploader=f"producer:{envelope.producer}",
            expected_sha256=data.sha256,
            metadata=data.metadata,
        )
        try:
            outcome = await self._ingest(data, template)
        except ImageRefused as refused:
            await self._record(data, {"status": "rejected", "reason": refused.reason, "message": refused.message})
            return
        if data.labels:
            await self._send_labels(envelope, data, outcome)
        await self._record(data, {"status": outcome.status, "image_id": outcome.doc.id})

    async def _ingest(self, data: ImageSubmitted, template: Submission) -> Outcome:
        if data.url is not None:
            return await ingest_url(self.deps, self.fetcher, data.url, template, retryable=True)
        assert data.s3 is not None
        try:
            raw = await self.s3.read(data.s3.bucket, data.s3.key, self.deps.settings.max_upload_bytes)
        except ObjectUnavailable as missing:
            if missing.transient:
                raise
            refused = ImageRefused(missing.reason, missing.message)
            await reject(self.deps, refused, source=template.source, filename=data.s3.key.rsplit("/", 1)[-1], origin=template.origin, uploader=template.uploader)
            raise refused from None
        fetched = template.origin.model_copy(update={"fetched_at": utcnow()})
        return await ingest(self.deps, replace(template, data=raw, filename=data.s3.key.rsplit("/", 1)[-1], origin=fetched))

    async def _send_labels(self, envelope: Envelope, data: ImageSubmitted, outcome: Outcome) -> None:
        labels = normalize_names(data.labels)
        event = AnnotationsImported(
            import_id=f"submission:{data.source_event_id}",
            dataset=data.source.dataset or f"upstream:{envelope.producer}",
            image_id=outcome.doc.id,
            image_width=outcome.doc.width,
            image_height=outcome.doc.height,
            categories=[ImportedCategory(name=label) for label in labels],
            annotations=[
                # Keyed by label (the annotation service keys on dataset, image and source id): the same image
                # sent under two event ids with one label gets one classification, not one per event.
                ImportedAnnotation(source_id=f"label:{label}", type="classification", label=label) for label in labels
            ],
        )
        staged = Envelope.wrap(event, producer=self.deps.producer).model_copy(
            update={"id": uuid.uuid5(LABELS_NAMESPACE, data.source_event_id)}
        )
        if await self.deps.repository.stage_once(staged):
            self.deps.relay.nudge()

    async def _record(self, data: ImageSubmitted, fields: dict) -> None:
        """The claim becomes the submission's record: taken, with what came of it."""
        now = utcnow()
        settled = {**fields, "at": now, EXPIRES_AT: expires(now, self.deps.settings.submission_retention_days)}
        await self.db[SUBMISSIONS].update_one(
            {"_id": data.source_event_id}, {"$set": settled, "$unset": {"lease_until": "", "owner": ""}}, upsert=True
        )


async def record_invalid(deps: IngestDeps, body: bytes, error: str) -> None:
    """A message that is not a valid ``image.submitted``: keep a rejection saying why (then the bus parks it),
    naming what the producer can find it by: its event id and ``source_event_id``, its producer, the image's
    address, as far as the body holds them."""
    said = _readable_parts(body)
    names = ", ".join(f"{k} {v!r}" for k, v in said.items() if k in ("event id", "source_event_id") and v)
    refused = ImageRefused(
        "invalid_message", f"The message{f' ({names})' if names else ''} is not a valid image.submitted event: {error[:1000]}"
    )
    uploader = f"producer:{said['producer']}" if said.get("producer") else None
    await reject(
        deps, refused, source=said.get("where"), filename=None, origin=Origin(kind="upstream"), uploader=uploader, size=len(body),
        key=f"invalid-message:{hashlib.sha256(body).hexdigest()}",  # replayed and parked again: still one record
    )  # fmt: skip


def _readable_parts(body: bytes) -> dict[str, str]:
    """What an invalid message still says about itself, each part only if it is short text."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(envelope, dict):
        return {}
    data = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
    s3 = data.get("s3") if isinstance(data.get("s3"), dict) else {}
    parts = {
        "event id": envelope.get("id"), "producer": envelope.get("producer"), "source_event_id": data.get("source_event_id"),
        "where": data.get("url") or (f"s3://{s3.get('bucket')}/{s3.get('key')}" if s3 else None),
    }  # fmt: skip
    return {k: v for k, v in parts.items() if isinstance(v, str) and 0 < len(v) <= 1024}


def _where(data: ImageSubmitted) -> str:
    """The image's address: its URL or its S3 reference (the schema requires one)."""
    return data.url or (f"s3://{data.s3.bucket}/{data.s3.key}" if data.s3 else "")


def _origin(data: ImageSubmitted, where: str) -> Origin:
    return Origin(
        kind=data.source.kind or "upstream",
        uri=data.source.uri or where,
        dataset=data.source.dataset,
        licence=data.source.licence,
        author=data.source.author,
    )
