"""The envelope every message on the bus travels in.

``type`` is the routing key (``image.ingested``), ``schema`` the integer
version of that type's payload; ``data`` is the payload, validated against the
pydantic model registered for ``(type, schema)``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.logs import current_correlation_id


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventData(BaseModel):
    """Base of every event payload: one subclass per (type, schema)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    event_schema: ClassVar[int] = 1


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_: int = Field(alias="schema", ge=1)
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str
    correlation_id: str
    data: dict[str, Any]

    @classmethod
    def wrap(cls, data: EventData, *, producer: str, correlation_id: str | None = None) -> Envelope:
        return cls(
            type=data.event_type,
            schema=data.event_schema,
            producer=producer,
            correlation_id=correlation_id or current_correlation_id(),
            data=data.model_dump(mode="json"),
        )

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)
