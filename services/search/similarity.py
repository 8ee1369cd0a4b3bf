"""The similarity index of this process: exact Hamming search over perceptual hashes.

Loaded from the search index at start (in the background: ``/readyz`` reports
``similarity`` until it is done), kept current by this process's projections,
and caught up every few seconds with what other replicas indexed (documents
whose ``indexed_at`` is newer than the start of the previous catch-up, less a margin for
refresh lag and clock skew between replicas).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.search.domain.hash_index import KINDS, HashIndex, parse_hash

if TYPE_CHECKING:
    from services.search.adapters.index import ImageIndex

log = logging.getLogger(__name__)

CATCH_UP_MARGIN = timedelta(seconds=30)


class Similarity:
    def __init__(self) -> None:
        self.hashes = HashIndex()
        self.ready = asyncio.Event()
        self.watermark: datetime | None = None

    def apply(self, image_id: str, doc: dict[str, Any]) -> None:
        self.hashes.upsert(image_id, {kind: parse_hash(doc.get(kind)) for kind in KINDS})

    def remove(self, image_id: str) -> None:
        self.hashes.remove(image_id)

    async def load(self, index: ImageIndex) -> int:
        """Apply every document indexed since the last load began, less a margin (all of them the first time)."""
        query = None
        if self.watermark is not None:
            query = {"range": {"indexed_at": {"gte": (self.watermark - CATCH_UP_MARGIN).isoformat()}}}
        started = datetime.now(UTC)
        seen = 0
        async for hit in index.scan(query=query, fields=list(KINDS), page=10000):
            values = hit.get("fields", {})
            self.apply(hit["_id"], {kind: (values.get(kind) or [None])[0] for kind in KINDS})
            seen += 1
        self.watermark = started
        return seen

    async def run(self, index: ImageIndex, interval: float) -> None:
        """Load, then catch up forever (cancelled when the app stops)."""
        while True:
            try:
                loaded = await self.load(index)
                if not self.ready.is_set():
                    log.info("similarity index loaded", extra={"images": loaded})
                    self.ready.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a missing index or a blip: try again next round
                log.warning("similarity index catch-up failed; retrying", exc_info=True)
            await asyncio.sleep(interval)

    async def check_ready(self) -> None:
        if not self.ready.is_set():
            raise RuntimeError("the similarity index is still loading")
