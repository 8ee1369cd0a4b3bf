"""The catalog: which model validates the payload of each (type, schema).

A breaking change to a payload is a new schema number published beside the
old one until every consumer has moved; new optional fields keep the number.
"""

from __future__ import annotations

from shared.events.annotation_changed import AnnotationCreated, AnnotationDeleted, AnnotationUpdated
from shared.events.annotations_imported import AnnotationsImported
from shared.events.envelope import Envelope, EventData
from shared.events.image_ingested import ImageIngested
from shared.events.image_rejected import ImageRejected
from shared.events.image_submitted import ImageSubmitted
from shared.events.label_changed import LabelChanged

CATALOG: dict[tuple[str, int], type[EventData]] = {
    (model.event_type, model.event_schema): model
    for model in (
        ImageSubmitted,
        ImageIngested,
        ImageRejected,
        AnnotationsImported,
        AnnotationCreated,
        AnnotationUpdated,
        AnnotationDeleted,
        LabelChanged,
    )
}


class UnknownEventError(ValueError):
    """No model is registered for this (type, schema)."""


def parse_data(envelope: Envelope) -> EventData:
    """Validate an envelope's payload against its registered model."""
    model = CATALOG.get((envelope.type, envelope.schema_))
    if model is None:
        raise UnknownEventError(f"no model for event {envelope.type!r} schema {envelope.schema_}")
    return model.model_validate(envelope.data)
