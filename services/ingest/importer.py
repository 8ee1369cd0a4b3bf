"""Dataset imports: a background worker that claims jobs, ingests their images and hands their
annotations to the annotation service (``annotations.imported``).

Each item goes through the same pipeline as an upload; a chunk of items
(``CORPUS_IMPORT_CHUNK``) is stored as one group, as a batch upload is. Its annotations are
staged in the outbox under an id derived from (job, item), so a resumed job
stages nothing twice; the annotation service keys on (dataset, source_id), so
a re-run import creates no duplicates there either.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.ingest.adapters.jobs import JobRepository
from services.ingest.archive_staging import ArchiveStaging
from services.ingest.domain.datasets import Dataset, DatasetError, ImportItem, fitted, in_pixels, read_dataset
from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.model import Origin
from services.ingest.rejecting import reject
from services.ingest.service import IngestDeps, Outcome, Prepared, Submission, prepare
from shared.background import LoopDriven, PollingLoop
from shared.events import AnnotationsImported, Envelope

log = logging.getLogger(__name__)

EVENT_NAMESPACE = uuid.UUID("6f0f3c52-7a0e-4c43-9d0b-1c0de5a1e0f1")

# The most warnings a job keeps (the first ones); it counts them all (``warnings_total``).
WARNINGS_KEPT = 100

# The dataset's folder, and the folders of which the file must be in one (import roots, or the staged archive).
Bounds = tuple[Path, tuple[Path, ...]]


def read_inside(path: Path, bounds: Bounds) -> bytes:
    """An item's bytes, read only if the file, links followed, lies inside its dataset and inside an import
    root (or the staged archive): ImageRefused ``outside_dataset`` otherwise, never reading it, and
    ``unreadable`` when it cannot be read. The resolved path is what is read, so the check holds for it."""
    dataset, outer = bounds
    try:
        real = path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a link loop, a NUL byte, a name too long
        raise ImageRefused("unreadable", f"{path.name} cannot be read: {_why(exc)}.") from None
    if not (real.is_relative_to(dataset) and any(real.is_relative_to(folder) for folder in outer)):
        raise ImageRefused(
            "outside_dataset", f"{path.name} lies outside the dataset's folder (a link or a name leading out of it); it was not read."
        )
    try:
        return real.read_bytes()
    except (OSError, ValueError) as exc:
        raise ImageRefused("unreadable", f"{path.name} cannot be read: {_why(exc)}.") from None


def _why(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def _where_looked(item: ImportItem, refused: ImageRefused) -> ImageRefused:
    """A missing file's refusal naming every place the reader looked for it (a dataset laid out otherwise
    than the reader expects shows which folder it is in, not only that it is not there)."""
    if refused.reason != "unreadable" or len(item.looked_at) < 2 or item.path.exists():
        return refused
    places = ", ".join(str(path) for path in item.looked_at)
    return ImageRefused("unreadable", f"{item.path.name} is not in the dataset: looked for it at {places}.", sha256=refused.sha256)


@dataclass
class JobWarnings:
    """A job's warnings: the first :data:`WARNINGS_KEPT`, and how many there are in all."""

    kept: list[str] = field(default_factory=list)
    total: int = 0

    @classmethod
    def of(cls, job: dict[str, Any], dataset: Dataset) -> JobWarnings:
        """A resumed job goes on from what it recorded (the dataset's warnings and its items' so far)."""
        if job.get("warnings_total") is not None:
            return cls(list(job.get("warnings", [])), job["warnings_total"])
        warnings = cls()
        warnings.add(dataset.warnings)
        return warnings

    def add(self, more: list[str]) -> None:
        self.kept += more[: max(0, WARNINGS_KEPT - len(self.kept))]
        self.total += len(more)

    def fields(self) -> dict[str, Any]:
        return {"warnings": self.kept, "warnings_total": self.total}


@dataclass
class ImportWorker(LoopDriven):
    deps: IngestDeps
    jobs: JobRepository
    owner: str = ""

    def __post_init__(self) -> None:
        self.owner = self.owner or f"ingest-{uuid.uuid4().hex[:12]}"
        self.staging = ArchiveStaging(self.deps.blobs, self.deps.settings)
        self._loop = PollingLoop("import-worker", self._claim_and_process, poll_seconds=self.deps.settings.import_poll_seconds)

    def nudge(self) -> None:
        self._loop.nudge()

    async def _claim_and_process(self) -> bool:
        """Process one claimed job; True when there was one (look for the next at once).
        A failure leaves the job under its lease, which lets it resume later."""
        job = await self.jobs.claim(self.owner, self.deps.settings.import_lease_seconds)
        if job is None:
            return False
        await self.process(job)
        return True

    async def process(self, job: dict[str, Any]) -> None:
        job_id, settings = job["_id"], self.deps.settings
        try:
            path = await self.staging.dataset_path(job) if job.get("archive") else Path(job["path"])
        except (DatasetError, OSError) as exc:
            await self._end(job, "failed", error=str(exc))
            return
        try:
            dataset = await asyncio.to_thread(read_dataset, job["kind"], path, job["dataset"])
            bounds = await asyncio.to_thread(self._bounds, job, dataset)
        except (DatasetError, OSError) as exc:
            await self._end(job, "failed", error=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - see _unreadable
            await self._end(job, "failed", error=self._unreadable(job, exc))
            return
        done = await self.jobs.done_indexes(job_id)
        warnings = JobWarnings.of(job, dataset)
        await self.jobs.renew(job_id, self.owner, settings.import_lease_seconds, total=len(dataset.items), **warnings.fields())
        todo = [i for i in range(len(dataset.items)) if i not in done]
        log.info("import running", extra={"import_id": job_id, "total": len(dataset.items), "remaining": len(todo)})
        for start in range(0, len(todo), settings.import_chunk):
            await self._chunk(job, dataset, bounds, todo[start : start + settings.import_chunk], warnings)
            processed, counts = await self.jobs.counts(job_id)
            if not await self.jobs.renew(job_id, self.owner, settings.import_lease_seconds, processed=processed, counts=counts):
                log.warning("import lease lost; another worker continues", extra={"import_id": job_id})
                return
        processed, counts = await self.jobs.counts(job_id)
        await self._end(job, "done", processed=processed, counts=counts)
        log.info("import done", extra={"import_id": job_id, **counts})

    @staticmethod
    def _unreadable(job: dict[str, Any], exc: Exception) -> str:
        """The error of a job whose dataset a reader failed on unexpectedly (a reader's bug, or input it does
        not foresee). Reading touches only this machine's disk, so trying again would fail the same way, every
        lease, for ever: the job fails instead, with the exception's message (and the traceback is logged)."""
        log.exception("import dataset unreadable", extra={"import_id": job["_id"]})
        return f"The {job['kind']} dataset could not be read: {type(exc).__name__}: {exc}"

    def _bounds(self, job: dict[str, Any], dataset: Dataset) -> Bounds:
        """Where the job's image files must lie, resolved: inside the dataset's folder, and inside the staged
        archive (an upload) or one of the import roots (a path). A link or a name in the dataset may point
        anywhere on this machine; only the top-level path was checked when the job was created."""
        outer = (self.staging.folder(job["_id"]),) if job.get("archive") else tuple(self.deps.settings.import_roots)
        return dataset.home.resolve(), tuple(folder.resolve() for folder in outer)

    async def _end(self, job: dict[str, Any], status: str, **fields: Any) -> None:
        await self.jobs.finish(job["_id"], self.owner, status, **fields)
        if job.get("archive"):
            await self.staging.remove(job)

    async def _chunk(self, job: dict[str, Any], dataset: Dataset, bounds: Bounds, indexes: list[int], warnings: JobWarnings) -> None:
        """Probe a chunk's images concurrently, store them as one group, then send each one's annotations
        and record it. An item is recorded only once its image and its annotations event are durable,
        so a job interrupted anywhere in the chunk redoes exactly the unrecorded items. The items'
        warnings are written to the job before the items are recorded: none is lost to an interruption."""
        slots = asyncio.Semaphore(self.deps.settings.concurrency)

        async def prepare_one(index: int) -> Prepared | dict[str, Any]:
            async with slots:
                return await self._prepare(job, dataset, bounds, index)

        prepared = await asyncio.gather(*(prepare_one(i) for i in indexes))
        ready = [(index, item) for index, item in zip(indexes, prepared, strict=True) if isinstance(item, Prepared)]
        stored = await self.deps.groups.store_all(self.deps, [item for _, item in ready])
        records = {index: item for index, item in zip(indexes, prepared, strict=True) if not isinstance(item, Prepared)}
        for (index, _), result in zip(ready, stored, strict=True):
            records[index] = await self._finish(job, dataset, index, result)
        await self._add_warnings(job, [w for index in indexes for w in records[index].get("warnings", [])], warnings)
        for index in indexes:
            await self.jobs.record_item(job["_id"], index, records[index])

    async def _add_warnings(self, job: dict[str, Any], more: list[str], warnings: JobWarnings) -> None:
        if more:
            warnings.add(more)
            await self.jobs.renew(job["_id"], self.owner, self.deps.settings.import_lease_seconds, **warnings.fields())

    @staticmethod
    def _relative(dataset: Dataset, item: ImportItem) -> str:
        """The item's file relative to the dataset's folder (its path when outside it): what a rejection names."""
        return item.path.relative_to(dataset.home).as_posix() if item.path.is_relative_to(dataset.home) else str(item.path)

    def _origin(self, job: dict[str, Any], dataset: Dataset, item: ImportItem) -> Origin:
        rel = item.path.relative_to(dataset.root).as_posix() if item.path.is_relative_to(dataset.root) else item.source_id
        return Origin(
            kind="folder" if job["kind"] == "folder" else "dataset",
            uri=item.uri or rel,
            dataset=dataset.name,
            licence=item.licence or job.get("licence"),
            author=job.get("author"),
            import_id=job["_id"],
        )

    @staticmethod
    def _record(item: ImportItem) -> dict[str, Any]:
        return {"source_id": item.source_id, "path": str(item.path), "annotations": 0, "events": 0}

    async def _prepare(self, job: dict[str, Any], dataset: Dataset, bounds: Bounds, index: int) -> Prepared | dict[str, Any]:
        """The item probed and ready to store, or its record if it was refused (the refusal is recorded)."""
        item = dataset.items[index]
        origin = self._origin(job, dataset, item)
        try:
            data = await asyncio.to_thread(read_inside, item.path, bounds)
        except ImageRefused as refused:
            refused = _where_looked(item, refused)
            source = self._relative(dataset, item)
            await reject(self.deps, refused, source=source, filename=item.path.name, origin=origin, uploader=job.get("created_by"))
            return {**self._record(item), "outcome": "rejected", "reason": refused.reason, "detail": refused.message}
        submission = Submission(
            data=data,
            filename=item.path.name,
            tags=tuple(job.get("tags", [])),
            source=origin.uri,
            origin=origin,
            uploader=job.get("created_by"),
        )
        try:
            return await prepare(self.deps, submission)
        except ImageRefused as refused:
            return {**self._record(item), "outcome": "rejected", "reason": refused.reason, "detail": refused.message}

    async def _finish(self, job: dict[str, Any], dataset: Dataset, index: int, result: Outcome | ImageRefused) -> dict[str, Any]:
        item = dataset.items[index]
        if isinstance(result, ImageRefused):
            return {**self._record(item), "outcome": "rejected", "reason": result.reason, "detail": result.message}
        doc = result.doc
        if result.created:
            kind = "near_duplicates" if doc.near_duplicate_of else "ingested"
        else:
            kind = "ingested" if self._stored_by_this_item(job, dataset, item, doc.origin) else "duplicates"
        warnings = await self._send_annotations(job, dataset, index, item, doc.id, doc.width, doc.height)
        record = {**self._record(item), "outcome": kind, "image_id": doc.id, "annotations": len(item.annotations), "events": 1}
        return {**record, "warnings": warnings} if warnings else record

    def _stored_by_this_item(self, job: dict[str, Any], dataset: Dataset, item: ImportItem, stored: Origin) -> bool:
        """Whether an image found stored already was stored by this very item (a resumed job), not by another
        item of this job holding the same bytes (a file twice in the dataset: the second is a duplicate)."""
        return stored.import_id == job["_id"] and stored.uri == self._origin(job, dataset, item).uri

    async def _send_annotations(
        self, job: dict[str, Any], dataset: Dataset, index: int, item: ImportItem, image_id: str, width: int, height: int
    ) -> list[str]:
        """Stage the item's annotations once (a resumed job finds them staged already), in pixels and moved
        onto the image's edge where they reach just past it; the warnings of those that reach further."""
        fitted_ones = [fitted(in_pixels(a, width, height) if item.normalised else a, width, height) for a in item.annotations]
        annotations = [annotation for annotation, _ in fitted_ones]
        event = AnnotationsImported(
            import_id=job["_id"],
            dataset=dataset.name,
            image_id=image_id,
            image_width=width,
            image_height=height,
            categories=dataset.categories_for(item.annotations),
            annotations=annotations,
        )
        envelope = Envelope.wrap(event, producer=self.deps.producer).model_copy(
            update={"id": uuid.uuid5(EVENT_NAMESPACE, f"{job['_id']}:{index}")}
        )
        if await self.deps.repository.stage_once(envelope):
            self.deps.relay.nudge()
        return [warning for _, warning in fitted_ones if warning]
