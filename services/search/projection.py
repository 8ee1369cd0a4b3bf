"""Re-projecting images: read their state from MongoDB, write it to the index in bulk.

Every event handler, ``reindex`` and ``reconcile`` goes through here. Writes
carry the external version, so a repeated or stale projection is a 409 that
counts as done: the handlers are idempotent and ordered by version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from services.search.adapters.images import ImageReader, ImageState
from services.search.adapters.index import BulkWriteError, ImageIndex
from services.search.domain.documents import project
from services.search.similarity import Similarity

log = logging.getLogger(__name__)


class Projector:
    def __init__(self, reader: ImageReader, index: ImageIndex, similarity: Similarity | None = None) -> None:
        self.reader = reader
        self.index = index
        self.similarity = similarity

    async def write(self, states: list[ImageState], *, target: str | None = None) -> dict[str, str]:
        actions = [(image["_id"], *project(image, summary)) for image, summary in states]
        outcome = await self.index.bulk_upsert(actions, target=target)
        if self.similarity is not None and target is None:
            for doc_id, doc, _ in actions:
                self.similarity.apply(doc_id, doc)
        return outcome

    async def project(self, image_ids: Iterable[str]) -> dict[str, str]:
        """Index the current state of these images; those MongoDB no longer holds leave the index.

        Returns id → ``written`` | ``stale`` (the index holds that version or a newer one) | ``removed``.
        A ``BulkWriteError`` carries the same for the images that were not refused."""
        ids = set(image_ids)
        states = await self.reader.load(ids)
        removed = await self.remove(sorted(ids - {image["_id"] for image, _ in states}))
        try:
            outcome = await self.write(states)
        except BulkWriteError as error:
            error.outcome.update(removed)
            raise
        return {**outcome, **removed}

    async def remove(self, gone: list[str]) -> dict[str, str]:
        """Take these images out of the index and the similarity index."""
        await self.index.delete_many(gone)
        if self.similarity is not None:
            for image_id in gone:
                self.similarity.remove(image_id)
        return dict.fromkeys(gone, "removed")


class Coalescer:
    """Gathers the image ids of concurrently handled messages into one bulk projection.

    Each caller waits for the flush that carries its ids and sees its failure,
    so a message is acked only once its image is written.
    """

    def __init__(self, flush: Callable[[set[str]], Awaitable[object]], *, max_batch: int, max_wait: float) -> None:
        self._flush = flush
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._pending: set[str] = set()
        self._done: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, image_ids: Iterable[str]) -> None:
        loop = asyncio.get_running_loop()
        if self._done is None:
            self._done = loop.create_future()
            self._timer = loop.call_later(self.max_wait, self._start_flush)
        done = self._done
        self._pending.update(image_ids)
        if len(self._pending) >= self.max_batch:
            self._start_flush()
        await asyncio.shield(done)

    def _start_flush(self) -> None:
        if self._done is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        ids, done = self._pending, self._done
        self._pending, self._done, self._timer = set(), None, None
        asyncio.get_running_loop().create_task(self._run(ids, done))

    async def _run(self, ids: set[str], done: asyncio.Future[None]) -> None:
        try:
            await self._flush(ids)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting handler, which retries or parks
            if not done.done():
                done.set_exception(exc)
            done.exception()  # mark retrieved: the waiters re-raise it
        else:
            if not done.done():
                done.set_result(None)
