import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.events import CATALOG, Envelope, ImageIngested, UnknownEventError, parse_data
from shared.logs import correlation_id


def _ingested() -> ImageIngested:
    return ImageIngested(
        image_id="ab" * 32,
        version=1,
        sha256="ab" * 32,
        width=640,
        height=480,
        format="JPEG",
        bytes=1234,
        tags=["cat"],
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def test_envelope_round_trips_through_json_with_schema_alias():
    token = correlation_id.set("corr-1")
    try:
        env = Envelope.wrap(_ingested(), producer="ingest")
    finally:
        correlation_id.reset(token)
    raw = env.to_json()
    assert b'"schema":1' in raw and b'"type":"image.ingested"' in raw
    back = Envelope.from_json(raw)
    assert back == env
    assert back.correlation_id == "corr-1"
    assert parse_data(back) == _ingested()


def test_every_catalog_entry_is_keyed_by_its_own_type_and_schema():
    for (event_type, schema), model in CATALOG.items():
        assert (model.event_type, model.event_schema) == (event_type, schema)


def test_unknown_type_or_schema_is_refused():
    env = Envelope(type="image.ingested", schema=99, producer="x", correlation_id="c", data={})
    with pytest.raises(UnknownEventError):
        parse_data(env)


def test_payload_that_does_not_match_its_model_is_refused():
    env = Envelope(type="image.ingested", schema=1, producer="x", correlation_id="c", data={"image_id": "x"})
    with pytest.raises(ValidationError):
        parse_data(env)


def test_envelope_requires_every_field():
    with pytest.raises(ValidationError):
        Envelope.from_json(b'{"id": "%s", "type": "image.ingested"}' % str(uuid.uuid4()).encode())


def test_a_submission_bounds_its_labels_and_takes_a_checksum_in_either_case():
    from pydantic import ValidationError

    from shared.events import ImageSubmitted

    upper = ImageSubmitted(source_event_id="e", url="http://example.org/a.jpg", sha256="AB" * 32)
    assert upper.sha256 == "ab" * 32  # upper-case hex used to park the whole message as invalid
    with pytest.raises(ValidationError, match="at most 1000 items"):
        ImageSubmitted(source_event_id="e", url="http://example.org/a.jpg", labels=["cat"] * 1001)
    with pytest.raises(ValidationError, match="at most 1000 characters"):
        ImageSubmitted(source_event_id="e", url="http://example.org/a.jpg", labels=["c" * 1001])
    # What producers sent before the bounds still goes through: a blank label is dropped, a long one is
    # left for the annotation service to refuse on its own (an import error), the image kept.
    kept = ImageSubmitted(source_event_id="e", url="http://example.org/a.jpg", labels=["cat", " ", "", "d" * 201])
    assert kept.labels == ["cat", "d" * 201]


def test_a_submission_refuses_metadata_that_json_holds_and_mongodb_cannot_store():
    """A NUL in a key or an integer beyond 64 bits is valid JSON. Such metadata used to fail only at the
    image's transaction, after its blobs were stored, and then was parked as a store failure (or retried
    five times for the integer). Now the message is invalid, with the reason, before anything is stored."""
    from shared.events import ImageSubmitted

    with pytest.raises(ValidationError, match="'metadata' cannot be stored: .*NULL byte"):
        ImageSubmitted(source_event_id="e", url="http://example.org/a.jpg", metadata={"camera\x00": "x"})
    with pytest.raises(ValidationError, match="'metadata' cannot be stored: .*8-byte ints"):
        ImageSubmitted(source_event_id="e", url="http://example.org/a.jpg", metadata={"ids": [{"n": 2**64}]})
    # What MongoDB does store is kept as sent: dotted and $-prefixed keys, the largest 64-bit integer.
    kept = {"exif.make": "Canon", "$source": "crawler", "n": 2**63 - 1, "nested": {"a": [1, None, "b"]}}
    assert ImageSubmitted(source_event_id="e", url="http://example.org/a.jpg", metadata=kept).metadata == kept
