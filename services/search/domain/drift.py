"""Drift between MongoDB (what should be indexed, at which version) and the index (what is)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

SAMPLE = 20


class Drift(BaseModel):
    expected: int  # images in MongoDB
    indexed: int  # documents in the index
    missing: list[str]  # in MongoDB, not in the index
    stale: list[str]  # indexed at an older version than MongoDB's
    ahead: list[str]  # indexed at a newer version than MongoDB's (MongoDB was restored from a backup)
    extra: list[str]  # in the index, not in MongoDB

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.stale) + len(self.ahead) + len(self.extra)

    def report(self) -> dict:
        """Counts and a sample of ids of each kind."""
        kinds = {"missing": self.missing, "stale": self.stale, "ahead": self.ahead, "extra": self.extra}
        return {
            "expected": self.expected,
            "indexed": self.indexed,
            "drift": self.total,
            **{kind: len(ids) for kind, ids in kinds.items()},
            "samples": {kind: sorted(ids)[:SAMPLE] for kind, ids in kinds.items() if ids},
        }


def compare(expected: Mapping[str, int], indexed: Mapping[str, int]) -> Drift:
    missing, stale, ahead = [], [], []
    for image_id, version in expected.items():
        have = indexed.get(image_id)
        if have is None:
            missing.append(image_id)
        elif have < version:
            stale.append(image_id)
        elif have > version:
            ahead.append(image_id)
    extra = [image_id for image_id in indexed if image_id not in expected]
    return Drift(expected=len(expected), indexed=len(indexed), missing=missing, stale=stale, ahead=ahead, extra=extra)
