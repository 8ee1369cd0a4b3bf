"""The configurable policy on sizes and formats."""

import pytest

from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.policy import Policy, check_facts, check_size

FACTS = {"sha256": "a" * 64, "format": "PNG", "width": 512, "height": 300}


def _reason(fn, *args) -> str:
    with pytest.raises(ImageRefused) as caught:
        fn(*args)
    return caught.value.reason


def test_a_conforming_image_passes():
    check_facts(FACTS, Policy())
    check_size(1000, Policy(max_bytes=1000))


def test_each_bound_refuses_with_its_reason():
    assert _reason(check_size, 1001, Policy(max_bytes=1000)) == "too_large"
    assert _reason(check_facts, FACTS, Policy(allowed_formats=frozenset({"JPEG"}))) == "format_not_allowed"
    assert _reason(check_facts, FACTS, Policy(min_width=600)) == "too_small"
    assert _reason(check_facts, FACTS, Policy(min_height=301)) == "too_small"
    assert _reason(check_facts, FACTS, Policy(max_width=511)) == "too_big"
    assert _reason(check_facts, FACTS, Policy(max_height=299)) == "too_big"
