"""The in-memory Hamming index is exact: it agrees with a brute-force scan."""

import random

import pytest

from services.search.domain.hash_index import HashIndex, parse_hash


def brute(hashes: dict[str, int], value: int, radius: int) -> list[tuple[str, int]]:
    found = [(image_id, bin(h ^ value).count("1")) for image_id, h in hashes.items()]
    return sorted((pair for pair in found if pair[1] <= radius), key=lambda p: (p[1], p[0]))


def test_radius_queries_match_brute_force_exactly():
    rng = random.Random(7)
    hashes = {f"img{i}": rng.getrandbits(64) for i in range(3000)}
    base = hashes["img0"]
    for i in range(20):  # planted near-duplicates at growing distances
        flipped = base
        for bit in rng.sample(range(64), i % 12):
            flipped ^= 1 << bit
        hashes[f"dup{i}"] = flipped
    index = HashIndex(capacity=16)
    for image_id, value in hashes.items():
        index.upsert(image_id, {"phash": value, "dhash": None})
    for radius in (0, 3, 8, 11, 20):
        assert index.query(base, "phash", radius=radius) == brute(hashes, base, radius)
    for k in (1, 5, 25, 200):  # the k nearest, found by widening the radius, are the brute-force k nearest
        assert index.query(base, "phash", k=k) == brute(hashes, base, 64)[:k]
        assert index.query(base, "phash", k=k, exclude="img0") == [p for p in brute(hashes, base, 64) if p[0] != "img0"][:k]


def test_k_nearest_and_exclusion():
    index = HashIndex()
    for image_id, value in {"a": 0b0, "b": 0b1, "c": 0b11, "d": 0b111}.items():
        index.upsert(image_id, {"phash": value})
    assert index.query(0, "phash", k=2) == [("a", 0), ("b", 1)]
    assert index.query(0, "phash", k=2, exclude="a") == [("b", 1), ("c", 2)]
    assert index.query(0, "phash", k=3, radius=1) == [("a", 0), ("b", 1)]


def test_updates_removals_and_missing_hashes():
    index = HashIndex()
    index.upsert("a", {"phash": 5, "dhash": None})
    index.upsert("b", {"phash": 5, "dhash": 9})
    assert index.query(9, "dhash", radius=0) == [("b", 0)]
    index.upsert("a", {"phash": 6})
    assert index.hash_of("a", "phash") == 6
    index.remove("b")
    assert "b" not in index and len(index) == 1
    assert index.query(5, "phash", radius=0) == []
    index.upsert("c", {"phash": 5})  # reuses b's slot
    assert index.query(5, "phash", radius=0) == [("c", 0)]


@pytest.mark.parametrize(("text", "value"), [("ffffffffffffffff", 2**64 - 1), ("00000000000000ff", 255), (None, None), ("abc", None), ("zzzzzzzzzzzzzzzz", None)])
def test_parse_hash(text, value):
    assert parse_hash(text) == value
