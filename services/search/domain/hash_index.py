"""An exact in-memory Hamming index over 64-bit perceptual hashes.

Two numpy ``uint64`` columns (pHash, dHash); a query XORs the column with
the query hash and counts bits (``numpy.bitwise_count``), so every answer is
exact (recall 1.0) and one million hashes take about a millisecond. Slots of
removed images are marked dead and reused.
"""

from __future__ import annotations

import numpy as np

KINDS = ("phash", "dhash")
HASH_BITS = 64
# Hashes scanned per block: 64 Ki × 8 bytes stays in the CPU cache.
BLOCK = 1 << 16


def parse_hash(value: str | None) -> int | None:
    """A 64-bit hash from its 16 hex digits (imagehash's text form); None if absent or another size."""
    if not value or len(value) != HASH_BITS // 4:
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


class HashIndex:
    def __init__(self, capacity: int = 1024) -> None:
        self._ids: list[str | None] = []
        self._slots: dict[str, int] = {}
        self._free: list[int] = []
        self._hashes = {kind: np.zeros(capacity, dtype=np.uint64) for kind in KINDS}
        self._present = {kind: np.zeros(capacity, dtype=bool) for kind in KINDS}

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._slots

    def _grow(self, needed: int) -> None:
        capacity = len(self._present["phash"])
        if needed <= capacity:
            return
        new = max(needed, capacity * 2)
        for kind in KINDS:
            self._hashes[kind] = np.resize(self._hashes[kind], new)
            present = np.zeros(new, dtype=bool)
            present[:capacity] = self._present[kind]
            self._present[kind] = present

    def upsert(self, image_id: str, hashes: dict[str, int | None]) -> None:
        slot = self._slots.get(image_id)
        if slot is None:
            if self._free:
                slot = self._free.pop()
                self._ids[slot] = image_id
            else:
                slot = len(self._ids)
                self._grow(slot + 1)
                self._ids.append(image_id)
            self._slots[image_id] = slot
        for kind in KINDS:
            value = hashes.get(kind)
            self._present[kind][slot] = value is not None
            self._hashes[kind][slot] = value or 0

    def remove(self, image_id: str) -> None:
        slot = self._slots.pop(image_id, None)
        if slot is not None:
            self._ids[slot] = None
            for kind in KINDS:
                self._present[kind][slot] = False
            self._free.append(slot)

    def hash_of(self, image_id: str, kind: str) -> int | None:
        slot = self._slots.get(image_id)
        if slot is None or not self._present[kind][slot]:
            return None
        return int(self._hashes[kind][slot])

    def _within(self, value: int, kind: str, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Slots within ``radius`` and their distances, scanned in cache-sized blocks."""
        used, query = len(self._ids), np.uint64(value)
        column, present = self._hashes[kind], self._present[kind]
        slots, dists = [], []
        for start in range(0, used, BLOCK):
            block = np.bitwise_count(column[start : min(start + BLOCK, used)] ^ query)
            hit = np.flatnonzero(block <= radius)
            if hit.size:
                slots.append(hit + start)
                dists.append(block[hit])
        if not slots:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint8)
        found, distances = np.concatenate(slots), np.concatenate(dists)
        keep = present[found]
        return found[keep], distances[keep]

    def query(
        self, value: int, kind: str, *, radius: int | None = None, k: int | None = None, exclude: str | None = None
    ) -> list[tuple[str, int]]:
        """Images within ``radius`` bits, or the ``k`` nearest (within ``radius`` if both), nearest first."""
        skip = self._slots.get(exclude) if exclude is not None else None
        limit = HASH_BITS if radius is None else radius
        # k nearest: widen the radius until k images are inside it; everything nearer is then found.
        steps = [limit] if k is None else sorted({min(r, limit) for r in (4, 8, 16, 24, 32, limit)})
        for step in steps:
            candidates, distances = self._within(value, kind, step)
            if k is None or len(candidates) - int(skip in candidates) >= k:
                break
        found = sorted(
            (int(d), self._ids[slot]) for slot, d in zip(candidates.tolist(), distances.tolist(), strict=True) if slot != skip
        )
        pairs = [(image_id, distance) for distance, image_id in found if image_id is not None]
        return pairs[:k] if k is not None else pairs
