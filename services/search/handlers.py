"""Message handlers: events in, index writes out. Each is idempotent."""

from __future__ import annotations

import logging

from services.search.adapters.index import ImageIndex
from services.search.domain.documents import image_document
from shared.bus import Handler
from shared.events import Envelope, EventData, ImageIngested

log = logging.getLogger(__name__)


def handlers(index: ImageIndex) -> dict[str, Handler]:
    async def image_ingested(envelope: Envelope, data: EventData) -> None:
        assert isinstance(data, ImageIngested)
        written = await index.upsert(data.image_id, image_document(data), data.version)
        log.info(
            "image indexed" if written else "stale or repeated event ignored",
            extra={"image_id": data.image_id, "event_id": str(envelope.id), "version": data.version},
        )

    return {ImageIngested.event_type: image_ingested}
