"""Event contracts: the envelope, one model per event type, and the catalog."""

from shared.events.catalog import CATALOG, UnknownEventError, parse_data
from shared.events.envelope import Envelope, EventData, utcnow
from shared.events.image_ingested import ImageIngested
from shared.events.image_rejected import ImageRejected

__all__ = [
    "CATALOG",
    "Envelope",
    "EventData",
    "ImageIngested",
    "ImageRejected",
    "UnknownEventError",
    "parse_data",
    "utcnow",
]
