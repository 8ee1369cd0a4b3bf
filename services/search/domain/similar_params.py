"""Parameters of a similarity query: which hash, a Hamming radius, and/or the k nearest."""

from __future__ import annotations

from pydantic import BaseModel

from services.search.domain.errors import bad_parameter
from services.search.domain.hash_index import KINDS
from shared.web.query import refuse_unknown

KNOWN = {"hash", "radius", "k"}


class SimilarParams(BaseModel):
    kind: str = "phash"
    radius: int | None = None
    k: int | None = None


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise bad_parameter(f"{name} must be an integer, not {raw!r}.") from None
    if not low <= value <= high:
        raise bad_parameter(f"{name} must be between {low} and {high}, not {value}.")
    return value


def parse_similar(query: dict[str, str], *, default_radius: int, max_radius: int, max_k: int) -> SimilarParams:
    refuse_unknown(query, KNOWN)
    kind = query.get("hash") or "phash"
    if kind not in KINDS:
        raise bad_parameter(f"hash must be one of {', '.join(KINDS)}, not {kind!r}.")
    k = _int("k", query["k"], 1, max_k) if query.get("k") else None
    if query.get("radius"):
        radius: int | None = _int("radius", query["radius"], 0, max_radius)
    else:
        radius = None if k is not None else default_radius
    return SimilarParams(kind=kind, radius=radius, k=k)
