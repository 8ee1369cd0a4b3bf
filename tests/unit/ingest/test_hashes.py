"""Multi-index hashing: any two hashes within the radius share a band (pigeonhole)."""

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.domain.hashes import band_widths, bands, hamming

hashes = st.integers(min_value=0, max_value=2**64 - 1).map(lambda v: f"{v:016x}")


def test_band_widths_cover_64_bits():
    for radius in range(0, 16):
        widths = band_widths(radius)
        assert sum(widths) == 64 and len(widths) == radius + 1


@given(hashes, st.sets(st.integers(0, 63), max_size=8), st.integers(0, 8))
def test_hashes_within_the_radius_share_a_band(base, flips, radius):
    value = int(base, 16)
    for bit in sorted(flips)[:radius]:
        value ^= 1 << bit
    other = f"{value:016x}"
    assert hamming(base, other) <= radius
    assert set(bands(base, radius)) & set(bands(other, radius))


def test_far_hashes_share_no_band_when_every_band_differs():
    assert not set(bands("0" * 16, 3)) & set(bands("f" * 16, 3))
    assert hamming("0" * 16, "f" * 16) == 64
