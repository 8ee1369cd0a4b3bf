"""Per-item results of batch uploads and URL fetches: one bad item never fails its neighbours."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from services.ingest.domain.errors import ImageRefused
from services.ingest.service import Outcome


class ItemResult(BaseModel):
    index: int
    filename: str | None = None
    url: str | None = None
    status: int  # 201 stored, 200 already stored, 413 over the size cap, 422 refused
    outcome: str  # created | duplicate | rejected
    id: str | None = None
    near_duplicate_of: str | None = None
    reason: str | None = None
    detail: str | None = None


class BatchResult(BaseModel):
    items: list[ItemResult]
    counts: dict[str, int]


def stored(index: int, outcome: Outcome, **where: Any) -> ItemResult:
    return ItemResult(
        index=index,
        status=201 if outcome.created else 200,
        outcome=outcome.status,
        id=outcome.doc.id,
        near_duplicate_of=outcome.doc.near_duplicate_of,
        **where,
    )


def refused(index: int, error: ImageRefused, *, status: int = 422, **where: Any) -> ItemResult:
    return ItemResult(index=index, status=status, outcome="rejected", reason=error.reason, detail=error.message, **where)


def summary(items: list[ItemResult]) -> dict[str, Any]:
    counts = {"created": 0, "duplicate": 0, "rejected": 0}
    for item in items:
        counts[item.outcome] += 1
    ordered = sorted(items, key=lambda i: i.index)
    return BatchResult(items=ordered, counts=counts).model_dump(mode="json", exclude_none=True)
