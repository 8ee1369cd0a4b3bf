"""Message handlers: ``annotations.imported`` from ingest's dataset imports.

Labels come from the categories (normalised names, the dataset's category id
as an external id, the supercategory as parent, COCO's keypoint names and
skeleton unless the label has a schema already); annotations are keyed on
``(dataset, image_id, source_id)`` so a redelivered or re-run import creates
nothing twice, while two imports under one dataset name (COCO train and val,
whose annotation ids both start at 1) never take each other's for their own. Each annotation is validated like one sent over HTTP; a bad one is
recorded in ``annotation_import_errors`` with its reason and does not stop
the good ones beside it.
"""

from __future__ import annotations

import logging

from services.annotation.domain.errors import InvalidAnnotation
from services.annotation.domain.fields import scheme_for
from services.annotation.service import IMPORT_CHUNK, AnnotationDeps, create_many
from shared.bus import Handler
from shared.events import AnnotationsImported, Envelope, utcnow

log = logging.getLogger(__name__)


class ImageNotYetKnown(Exception):
    """The image document is not there (yet): retried with back-off, then parked, never dropped."""


def handlers(deps: AnnotationDeps) -> dict[str, Handler]:
    async def on_annotations_imported(envelope: Envelope, data: AnnotationsImported) -> None:
        actor = f"import:{data.dataset}"
        known = await deps.labels.resolve_many([c.name for c in data.categories])
        scheme = scheme_for(data.dataset)
        if scheme is None and any(c.external_id for c in data.categories):
            # No usable scheme in the dataset's name (control characters, nothing but dots and '$'):
            # its labels are still made, with their parents, just without the dataset's category ids.
            log.warning("category ids not kept: dataset name is no external id scheme", extra={"dataset": data.dataset})
        for category in data.categories:
            external = {scheme: category.external_id} if scheme and category.external_id else {}
            label = known.get(category.name)
            schema = (category.keypoints, category.skeleton or []) if category.keypoints else None
            if label is not None and all(k in label.get("external_ids", {}) for k in external) and (schema is None or label.get("keypoints")):
                continue  # already there with an id in this dataset (and a keypoint schema): nothing to write
            try:
                await deps.labels.ensure(category.name, actor, parent=category.parent, external_ids=external, schema=schema)
            except InvalidAnnotation as exc:
                log.warning("category skipped", extra={"category": category.name, "reason": exc.detail})
        if not await deps.annotations.images([data.image_id]):
            raise ImageNotYetKnown(f"image {data.image_id} is not in the images collection")
        source_ids = [a.source_id for a in data.annotations]
        done = await deps.annotations.existing_sources(data.dataset, data.image_id, source_ids)
        unique: dict[str, object] = {}
        for a in data.annotations:
            unique.setdefault(a.source_id, a)  # a source id twice in one event: the first one counts
        todo = [a for a in unique.values() if a.source_id not in done]
        items = [
            {**a.model_dump(), "image_id": data.image_id, "dataset": data.dataset} for a in todo
        ]
        results = await create_many(deps, actor, items, IMPORT_CHUNK) if items else []
        failures = [(todo[r["index"]], r) for r in results if r["status"] != 201]
        now = utcnow()
        for item, result in failures:
            await deps.annotations.record_import_error(
                f"{data.dataset}:{data.image_id}:{item.source_id}",
                {
                    "import_id": data.import_id, "dataset": data.dataset, "image_id": data.image_id,
                    "source_id": item.source_id, "reason": result["reason"], "detail": result["detail"],
                    "event_id": str(envelope.id), "recorded_at": now,
                },  # fmt: skip
            )
        log.info(
            "annotations imported",
            extra={"image_id": data.image_id, "annotations_created": len(results) - len(failures), "failed": len(failures),
                   "already_there": len(done)},  # fmt: skip
        )

    return {AnnotationsImported.event_type: on_annotations_imported}
