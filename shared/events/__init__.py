"""Event contracts: the envelope, one model per event type, and the catalog."""

from shared.events.annotation_changed import AnnotationCreated, AnnotationDeleted, AnnotationUpdated
from shared.events.annotations_imported import AnnotationsImported, ImportedAnnotation, ImportedCategory
from shared.events.catalog import CATALOG, UnknownEventError, parse_data
from shared.events.envelope import Envelope, EventData, utcnow
from shared.events.image_ingested import ImageIngested
from shared.events.image_rejected import ImageRejected
from shared.events.image_submitted import ImageSubmitted, S3Object, SubmittedSource
from shared.events.label_changed import LabelChanged

__all__ = [
    "CATALOG",
    "AnnotationCreated",
    "AnnotationDeleted",
    "AnnotationUpdated",
    "AnnotationsImported",
    "Envelope",
    "EventData",
    "ImageIngested",
    "ImageRejected",
    "ImageSubmitted",
    "ImportedAnnotation",
    "ImportedCategory",
    "LabelChanged",
    "S3Object",
    "SubmittedSource",
    "UnknownEventError",
    "parse_data",
    "utcnow",
]
