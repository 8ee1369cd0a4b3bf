"""The ingest pipeline: every way in (upload, URL, upstream event, dataset import) ends here.

Order of work for one image: byte budget → probe in a worker (type sniffed,
pixel budget, full decode, SHA-256 and the sender's checksum, EXIF, pHash and
dHash, thumbnail) → policy → exact duplicate by SHA-256 → near duplicate by
pHash Hamming distance → blobs (original, thumbnail, standard copy) → the
document, its source record and its ``image.ingested`` event in one MongoDB
transaction. Every refusal is recorded (``rejections`` + ``image.rejected``).

The probe runs per image (bounded in time and memory in a worker); the rest
runs per group (:func:`store_many`): one query finds the exact duplicates,
one the near-duplicate candidates, the blobs go up concurrently and one
transaction writes the group, so a batch upload or an import pays each
round trip once, not once per image. Images that arrive one at a time share
groups through a group commit (:class:`GroupCommit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from services.ingest.adapters.cpu import CpuPool, WorkerCrashed, WorkersStopped, WorkerTimeout
from services.ingest.adapters.repository import ImageRepository, source_id
from services.ingest.config import IngestSettings
from services.ingest.domain.derivatives import STANDARD_MIME, standard_key
from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.hashes import bands, hamming
from services.ingest.domain.model import Exif, ImageDocument, ImageFacts, Origin
from services.ingest.domain.policy import Policy, check_facts, check_size, check_tags
from services.ingest.domain.probe import probe_image
from services.ingest.metrics import OUTCOMES, timed
from services.ingest.rejecting import record_rejection
from shared.clients.blobs import BlobStore, original_key, thumbnail_key
from shared.events import Envelope, utcnow
from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)

Status = Literal["created", "duplicate"]

# Stored images compared per pHash band of a new one (a band shared by more is a flat or generic picture).
NEAR_CANDIDATES = 200


class GroupCommit:
    """Group commit for images that arrive one at a time (single uploads, URLs, upstream events).

    An image is stored at once when fewer than ``in_flight`` groups are being
    stored; otherwise it waits, and the images that waited go together as the
    next group (at most ``max_group``). Nothing waits while the service is
    idle, and under load one lookup and one transaction serve many images.
    """

    def __init__(self, store: Callable[[IngestDeps, Sequence[Prepared]], Awaitable[list[Outcome | ImageRefused]]] | None = None,
                 *, max_group: int = 32, in_flight: int = 2) -> None:  # fmt: skip
        self._store_many = store
        self.max_group = max_group
        self.in_flight = in_flight
        self._waiting: list[tuple[Prepared, asyncio.Future[Outcome | ImageRefused]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def store(self, deps: IngestDeps, item: Prepared) -> Outcome | ImageRefused:
        [result] = await self.store_all(deps, [item])
        return result

    async def store_all(self, deps: IngestDeps, items: Sequence[Prepared]) -> list[Outcome | ImageRefused]:
        """Store these images, in arrival order, in as few groups as the queue allows (a batch's images
        go together when a slot is free). Raises the error of a group that failed."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outcome | ImageRefused]] = [loop.create_future() for _ in items]
        self._waiting.extend(zip(items, futures, strict=True))
        self._start(deps)
        results: list[Outcome | ImageRefused] = []
        failure: Exception | None = None
        for future in futures:  # every one is awaited, so no error is left unretrieved
            try:
                results.append(await future)
            except Exception as exc:  # noqa: BLE001 - raised below, once
                failure = failure or exc
        if failure is not None:
            raise failure
        return results

    def _start(self, deps: IngestDeps) -> None:
        while self._waiting and len(self._running) < self.in_flight:
            group, self._waiting = self._waiting[: self.max_group], self._waiting[self.max_group :]
            task = asyncio.get_running_loop().create_task(self._store(deps, group))
            self._running.add(task)
            task.add_done_callback(lambda done: (self._running.discard(done), self._start(deps)))

    async def _store(self, deps: IngestDeps, group: list[tuple[Prepared, asyncio.Future[Outcome | ImageRefused]]]) -> None:
        store = self._store_many or store_many
        try:
            results = await store(deps, [item for item, _ in group])
        except Exception as exc:  # noqa: BLE001 - every waiting caller re-raises it
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():  # a caller that gave up (its image is stored all the same)
                    future.set_result(result)


@dataclass(frozen=True)
class IngestDeps:
    repository: ImageRepository
    blobs: BlobStore
    cpu: CpuPool
    relay: OutboxRelay
    producer: str
    settings: IngestSettings
    groups: GroupCommit = field(default_factory=GroupCommit, compare=False)

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


@dataclass(frozen=True)
class Prepared:
    """An image that passed the probe and the policy, ready to be stored."""

    submission: Submission
    probed: dict[str, Any]
    facts: ImageFacts


async def ingest(deps: IngestDeps, submission: Submission) -> Outcome:
    """Store one image, or raise :class:`ImageRefused` after recording why.

    Concurrent callers share groups (:class:`GroupCommit`)."""
    result = await deps.groups.store(deps, await prepare(deps, submission))
    if isinstance(result, ImageRefused):
        raise result
    return result


async def prepare(deps: IngestDeps, submission: Submission) -> Prepared:
    """Byte budget, probe (in a worker) and policy for one image; a refusal is recorded, then raised."""
    try:
        check_tags(submission.tags)
        check_size(len(submission.data), deps.policy)
        with timed("probe"):
            probed = await _probe(deps, submission)
        check_facts(probed, deps.policy)
        return Prepared(submission, probed, ImageFacts.model_validate(probed))
    except ImageRefused as refused:
        await record_rejection(deps, submission, refused)
        raise


async def store_many(deps: IngestDeps, items: Sequence[Prepared]) -> list[Outcome | ImageRefused]:
    """Store a group of probed images: one lookup, one near-duplicate query, one transaction.

    Results come back in the order of ``items``: an :class:`Outcome`, or the
    :class:`ImageRefused` (already recorded) of a near-duplicate the policy refuses.
    Images earlier in the group count as stored for the ones after them, so
    the same bytes twice in one group are one image, and near-duplicates link
    to the first of them.
    """
    settings = deps.settings
    radius = settings.near_duplicate_radius
    with timed("lookup"):
        existing = await deps.repository.get_many(sorted({p.facts.sha256 for p in items}))
        fresh = [p for p in items if p.facts.sha256 not in existing]
        item_bands = {id(p): bands(p.facts.phash, radius) if radius else [] for p in fresh}
        wanted = sorted({band for keys in item_bands.values() for band in keys})
        stored = await deps.repository.near_candidates(wanted, limit=NEAR_CANDIDATES * max(1, len(fresh)))
    near = _NearIndex(stored)

    results: list[Outcome | ImageRefused | None] = [None] * len(items)
    first_in_group: dict[str, int] = {}  # sha256 → position of the image in this group that stores it
    duplicate_sources: list[dict[str, Any]] = []
    docs: list[tuple[int, ImageDocument, dict[str, Any]]] = []
    for position, item in enumerate(items):
        sha = item.facts.sha256
        source = _source_record(sha, item.submission)
        if sha in existing:
            duplicate_sources.append(source)
            results[position] = Outcome(existing[sha], "duplicate")
            continue
        if sha in first_in_group:
            continue  # settled once the first copy is stored
        near_id, near_distance = near.nearest(item.facts, item_bands[id(item)], radius)
        if near_id is not None and settings.near_duplicate_policy == "reject":
            refused = ImageRefused(
                "near_duplicate",
                f"The image is a near-duplicate of image {near_id} (pHash distance {near_distance}).",
                sha256=sha,
            )
            await record_rejection(deps, item.submission, refused)
            results[position] = refused
            continue
        first_in_group[sha] = position
        doc = _document(settings, item, item_bands[id(item)], near_id, near_distance)
        near.add(doc.id, doc.phash, doc.dhash, doc.phash_bands)
        docs.append((position, doc, source))

    with timed("blobs"):
        await asyncio.gather(*(put for item in (items[position] for position, _, _ in docs) for put in _puts(deps, item)))
    with timed("transaction"):
        created = await _commit(deps, docs)
    await deps.repository.add_sources(duplicate_sources)

    for (position, doc, _), outcome in zip(docs, created, strict=True):
        results[position] = outcome
        if outcome.created:
            OUTCOMES.labels(outcome="created", reason="").inc()
            log.info("image ingested", extra={"image_id": doc.id, "bytes": doc.bytes, "format": doc.format})
    later_copies: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        if results[position] is None:  # a second copy of bytes stored earlier in this group
            first = results[first_in_group[item.facts.sha256]]
            assert isinstance(first, Outcome)
            later_copies.append(_source_record(item.facts.sha256, item.submission))
            results[position] = Outcome(first.doc, "duplicate")
        if isinstance(results[position], Outcome) and results[position].status == "duplicate":
            OUTCOMES.labels(outcome="duplicate", reason="").inc()
    await deps.repository.add_sources(later_copies)
    return [result for result in results if result is not None]  # every position is settled by now


async def _commit(deps: IngestDeps, docs: list[tuple[int, ImageDocument, dict[str, Any]]]) -> list[Outcome]:
    """Documents, sources and events in one transaction; one by one if a concurrent writer stored one of them."""
    if not docs:
        return []
    envelopes = [Envelope.wrap(doc.to_event(), producer=deps.producer) for _, doc, _ in docs]
    repository = deps.repository
    if await repository.add_many([doc for _, doc, _ in docs], envelopes, [source for _, _, source in docs]):
        deps.relay.nudge()
        return [Outcome(doc, "created") for _, doc, _ in docs]
    outcomes = []
    for (_, doc, source), envelope in zip(docs, envelopes, strict=True):
        if await repository.add(doc, envelope, source):
            outcomes.append(Outcome(doc, "created"))
            continue
        winner = await repository.get(doc.id)  # the concurrent upload of the same bytes won the race
        assert winner is not None
        await repository.add_source(source)
        outcomes.append(Outcome(winner, "duplicate"))
    deps.relay.nudge()
    return outcomes


def _puts(deps: IngestDeps, item: Prepared) -> list[Awaitable[None]]:
    settings, facts, probed = deps.settings, item.facts, item.probed
    puts = [
        deps.blobs.put(original_key(facts.sha256), item.submission.data, facts.mime, sha256=facts.sha256),
        deps.blobs.put(thumbnail_key(facts.sha256), probed["thumbnail"], "image/jpeg"),
    ]
    if probed.get("standard") is not None:
        key = standard_key(facts.sha256, settings.standard_copy)
        puts.append(deps.blobs.put(key, probed["standard"], STANDARD_MIME[settings.standard_copy]))
    return puts


def _document(
    settings: IngestSettings, item: Prepared, phash_bands: list[str], near_id: str | None, near_distance: int | None
) -> ImageDocument:
    submission, facts, probed = item.submission, item.facts, item.probed
    return ImageDocument(
        _id=facts.sha256,
        **facts.model_dump(),
        phash_bands=phash_bands,
        phash_bands_radius=settings.near_duplicate_radius,
        tags=list(submission.tags),
        source=submission.source,
        filename=submission.filename,
        origin=submission.origin,
        uploader=submission.uploader,
        exif=Exif.model_validate(probed.get("exif") or {}),
        metadata=submission.metadata,
        thumbnail=True,
        standard_key=standard_key(facts.sha256, settings.standard_copy) if probed.get("standard") is not None else None,
        near_duplicate_of=near_id,
        near_duplicate_distance=near_distance,
        created_at=utcnow(),
    )


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
    except (ImageRefused, WorkersStopped):  # the pool closing is the service stopping, not the image's fault
        raise
    except MemoryError:
        raise ImageRefused("too_large", "Processing the image needs more memory than a worker may use.") from None
    except Exception as exc:  # noqa: BLE001 - a decoder bug on odd bytes is this image's problem, not a 500
        log.warning("probe failed unexpectedly", exc_info=True)
        raise ImageRefused("undecodable", f"The image could not be processed: {type(exc).__name__}: {exc}.") from None


class _NearIndex:
    """Candidates for near-duplicates, by pHash band: the stored images found, then the group's own."""

    def __init__(self, stored: list[dict[str, Any]]) -> None:
        self._by_band: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for candidate in stored:
            self.add(candidate["_id"], candidate["phash"], candidate["dhash"], candidate.get("phash_bands", []))

    def add(self, image_id: str, phash: str, dhash: str, keys: list[str]) -> None:
        for band in keys:
            self._by_band[band].append((image_id, phash, dhash))

    def nearest(self, facts: ImageFacts, keys: list[str], radius: int) -> tuple[str | None, int | None]:
        best: tuple[int, str] | None = None
        seen: set[str] = set()
        for band in keys:
            for image_id, phash, dhash in self._by_band.get(band, ())[:NEAR_CANDIDATES]:
                if image_id in seen:
                    continue
                seen.add(image_id)
                distance = hamming(phash, facts.phash)
                # dHash must agree too: two flat or blank images share a pHash without being the same picture.
                if distance <= radius and hamming(dhash, facts.dhash) <= 2 * radius + 4:
                    if best is None or (distance, image_id) < best:
                        best = (distance, image_id)
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
