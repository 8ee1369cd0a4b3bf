"""Perceptual-hash arithmetic: Hamming distance and the bands used to find near-duplicates.

Multi-index hashing: a 64-bit hash is split into ``radius + 1`` bands. Two hashes
within Hamming distance ``radius`` differ in at most ``radius`` bits, so by the
pigeonhole principle at least one band is identical. Each band is stored as an
indexed array element (``"<band>:<hex>"``); the candidates sharing a band are
few, and their exact distance is computed afterwards.
"""

from __future__ import annotations

HASH_BITS = 64


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def band_widths(radius: int) -> list[int]:
    count = radius + 1
    base, extra = divmod(HASH_BITS, count)
    return [base + 1 if i < extra else base for i in range(count)]


def bands(hex_hash: str, radius: int) -> list[str]:
    """The band keys of a hash for a search radius (the same radius must be used to store and to query)."""
    value = int(hex_hash, 16)
    keys: list[str] = []
    shift = HASH_BITS
    for index, width in enumerate(band_widths(radius)):
        shift -= width
        keys.append(f"{index}:{(value >> shift) & ((1 << width) - 1):x}")
    return keys
