"""``image.submitted`` — an upstream system asks ingest to take an image in.

Published by producers outside this project (scrapers, photo APIs) to the
``corpus`` exchange with routing key ``image.submitted``. The image is given by
URL *or* by an S3 object reference. ``source_event_id`` is the producer's own id
for the submission: ingest keys on it, so a redelivered or re-sent submission
is taken once.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import bson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from shared.events.envelope import EventData

# Free metadata is kept in the image's MongoDB document (16 MiB at most, with everything else).
MAX_METADATA_BYTES = 64 * 1024
# Labels become annotations of the image: unbounded, 30,000 of 300 characters made an event too large to
# store, retried five times and parked after the image was. The bounds keep an event far below MongoDB's
# 16 MiB and far above any real list; a label the annotation service refuses (over 200 characters once
# normalised) is an import error there (GET /v1/import-errors), and the image is kept.
MAX_LABELS, MAX_LABEL_CHARS = 1000, 1000


class S3Object(BaseModel):
    model_config = ConfigDict(frozen=True)

    # S3's bucket naming rules; a key is 1 to 1,024 characters.
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
    key: str = Field(min_length=1, max_length=1024)


class SubmittedSource(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str = "upstream"  # upload | url | upstream | dataset | folder
    uri: str | None = None
    dataset: str | None = None
    licence: str | None = None
    author: str | None = None


class ImageSubmitted(EventData):
    event_type = "image.submitted"
    event_schema = 1

    source_event_id: str = Field(min_length=1, max_length=200)
    url: str | None = None
    s3: S3Object | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="expected checksum (hex, either case), if known")
    source: SubmittedSource = SubmittedSource()
    tags: list[str] = []
    # Image-level classes.
    labels: list[Annotated[str, StringConstraints(max_length=MAX_LABEL_CHARS)]] = Field(default=[], max_length=MAX_LABELS)
    metadata: dict[str, Any] = {}

    @field_validator("labels", mode="before")
    @classmethod
    def _no_blank_labels(cls, value: Any) -> Any:
        """A blank label names nothing: dropped, as it always was, not a reason to refuse the image."""
        return [label for label in value if not (isinstance(label, str) and not label.strip())] if isinstance(value, list) else value

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower_case_hex(cls, value: Any) -> Any:
        """Hex digits in either case name the same checksum (a producer's upper-case hex was parked as invalid)."""
        return value.lower() if isinstance(value, str) else value

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(metadata, default=str).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"'metadata' is {size:,} bytes as JSON; at most {MAX_METADATA_BYTES:,} are kept with an image")
        # Valid JSON that BSON cannot hold (a key with a NUL character, an integer beyond 64 bits) failed only at
        # the image's transaction, after its blobs were stored: parked as if the store had failed, or retried
        # five times for an OverflowError. Refused here, it is an invalid message with the reason.
        try:
            bson.encode({"metadata": metadata})
        except (bson.errors.InvalidDocument, OverflowError) as exc:
            raise ValueError(f"'metadata' cannot be stored: {exc}") from None
        return metadata

    @model_validator(mode="after")
    def _exactly_one_location(self) -> ImageSubmitted:
        if (self.url is None) == (self.s3 is None):
            raise ValueError("give exactly one of 'url' and 's3'")
        return self
