"""Message handlers: events in, index writes out. Each re-projects the image from MongoDB.

The event only says which image changed; its state comes from MongoDB, so a
repeated or late event writes the same (or an older) version and Elasticsearch
refuses it with 409: idempotent and ordered.
"""

from __future__ import annotations

import logging

from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.domain.documents import clipped
from services.search.projection import Coalescer, Projector
from shared.bus import Handler
from shared.events import AnnotationCreated, AnnotationDeleted, AnnotationUpdated, Envelope, EventData, ImageIngested, LabelChanged
from shared.naming import normalize_names

log = logging.getLogger(__name__)

LABEL_BATCH = 500


async def images_carrying(reader: ImageReader, index: ImageIndex, names: list[str]) -> set[str]:
    """Images whose summary (MongoDB) or search document (the index) carries one of these labels."""
    ids = await reader.ids_with_labels(names)
    # As the documents hold them: a name past the keyword limit is clipped there, and a longer term is refused.
    async for hit in index.scan(query={"terms": {"labels": [clipped(name) for name in names]}}):
        ids.add(hit["_id"])
    return ids


def handlers(projector: Projector, coalescer: Coalescer) -> dict[str, Handler]:
    async def image_changed(envelope: Envelope, data: EventData) -> None:
        assert isinstance(data, ImageIngested | AnnotationCreated | AnnotationUpdated | AnnotationDeleted)
        await coalescer.submit([data.image_id])
        log.info("image projected", extra={"image_id": data.image_id, "event_id": str(envelope.id), "version": data.version})

    async def label_changed(envelope: Envelope, data: EventData) -> None:
        assert isinstance(data, LabelChanged)
        names = normalize_names([data.name, data.previous_name or "", *data.aliases])
        ids = sorted(await images_carrying(projector.reader, projector.index, names))
        for start in range(0, len(ids), LABEL_BATCH):
            await projector.project(ids[start : start + LABEL_BATCH])
        log.info("label change projected", extra={"label_id": data.label_id, "images": len(ids), "event_id": str(envelope.id)})

    return {
        ImageIngested.event_type: image_changed,
        AnnotationCreated.event_type: image_changed,
        AnnotationUpdated.event_type: image_changed,
        AnnotationDeleted.event_type: image_changed,
        LabelChanged.event_type: label_changed,
    }
