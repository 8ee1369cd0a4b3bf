"""What callers send that search must refuse with a 400 rather than fail on: tampered cursors (search's and
the near-duplicate clusters'), a cursor sent with other filters than its first page's, integers beyond 64 bits and non-finite floats in ranges, repeated parameters;
and a date-only upper bound that covers its whole day."""

from __future__ import annotations

import base64
import json

import pytest
from multidict import MultiDict

from services.search.domain.cursor import Cursor, decode_cursor, encode_cursor, filter_fingerprints
from services.search.domain.params import parse_params, single_values
from services.search.domain.query import build_search
from services.search.similar_views import _after_key
from shared.problems import Problem

ID = "ab" * 32


def raw_cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def refused(fn, *args, **kwargs) -> Problem:
    with pytest.raises(Problem) as caught:
        fn(*args, **kwargs)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("sort", "after", "pit"),
    [
        ("-created_at", ["abc", "x"], None),  # a date as text: Elasticsearch's 'failed to parse date field'
        ("-created_at", [{"a": 1}, "x"], None),
        ("-created_at", [None, None], None),
        ("-created_at", [True, "x"], None),
        ("-created_at", [1e30, "x"], None),  # a float where the sort gives longs
        ("-created_at", [2**64, "x"], None),  # beyond 64 bits: the JSON encoder's TypeError
        ("megapixels", [10**30, "x"], None),
        ("megapixels", [0.3, ""], None),
        ("width", ["wide", ID], None),
        ("relevance", ["high", ID], None),
        ("-created_at", [1, ID], "!!!notbase64"),
        ("-created_at", [1, ID], ""),
        ("-created_at", [1, ID], 7),
    ],
)
def test_a_tampered_search_cursor_is_a_bad_cursor(sort, after, pit):
    value = raw_cursor({"sort": sort, "after": after, **({"pit": pit} if pit is not None else {})})
    assert refused(decode_cursor, value, sort=sort, sort_fields=2, filters={}).type.endswith("/bad-cursor")


def cursor_for(query: dict[str, str]) -> str:
    params = parse_params(query, default_limit=20, max_limit=100)
    return encode_cursor(Cursor(sort=params.sort, after=[1, ID], filters=filter_fingerprints(params)))


def decode_with(cursor: str, query: dict[str, str]) -> Cursor:
    params = parse_params(query, default_limit=20, max_limit=100)
    return decode_cursor(cursor, sort=params.sort, sort_fields=2, filters=filter_fingerprints(params))


@pytest.mark.parametrize(
    ("first", "then", "named"),
    [
        ({"labels": "person"}, {"labels": "cat"}, "labels"),
        ({"labels": "person"}, {}, "labels"),
        ({}, {"q": "dog"}, "q"),
        ({"min_width": "10", "has_annotations": "true"}, {"min_width": "11", "has_annotations": "true"}, "min_width/max_width"),
        ({"created_to": "2026-01-01"}, {"created_to": "2026-01-02"}, "created_from/created_to"),
    ],
)
def test_a_cursor_sent_with_other_filters_is_a_bad_cursor_naming_them(first, then, named):
    problem = refused(decode_with, cursor_for(first), then)
    assert problem.type.endswith("/bad-cursor") and f"other filters: {named} differ" in problem.detail


def test_a_cursor_handed_out_before_cursors_kept_filters_still_pages_across_the_upgrade():
    params = parse_params({"labels": "person"}, default_limit=20, max_limit=100)
    old = raw_cursor({"sort": params.sort, "after": [1, ID]})  # no "filters": made by the previous version
    assert decode_with(old, {"labels": "person"}).after == [1, ID]


def test_a_cursor_takes_the_same_filters_written_another_way():
    cursor = cursor_for({"labels": "Cat,dog", "created_from": "2026-01-01T01:00:00+01:00", "tags": "a"})
    assert decode_with(cursor, {"tags": "a", "labels": "dog,cat,cat", "created_from": "2026-01-01T00:00:00Z"}).after == [1, ID]


@pytest.mark.parametrize(
    ("sort", "after"),
    [
        ("-created_at", [1767225600000, ID]),
        ("captured_at", [-(2**63), ID]),  # a missing capture date sorts as Long.MIN_VALUE
        ("-megapixels", [0.30720001459121704, ID]),
        ("megapixels", [2, ID]),
        ("relevance", [1.2345, ID]),
        ("bytes", [2**63 - 1, ID]),
    ],
)
def test_the_cursors_search_gives_out_still_pass(sort, after):
    value = encode_cursor(Cursor(sort=sort, after=after, pit="gcSHBAEVdGVzdC1pbWFnZXMtdjIWV2x4"))
    assert decode_cursor(value, sort=sort, sort_fields=2, filters={}).after == after


@pytest.mark.parametrize("value", [raw_cursor("abc"), raw_cursor({"foo": 1}), raw_cursor([1]), raw_cursor({"original": 1}), "!!!"])
def test_a_tampered_near_duplicates_cursor_is_a_bad_cursor(value):
    assert refused(_after_key, value).type.endswith("/bad-cursor")
    assert _after_key(raw_cursor({"original": ID})) == {"original": ID}


@pytest.mark.parametrize(
    "query",
    [
        {"min_width": "99999999999999999999"},
        {"min_bytes": "99999999999999999999"},
        {"max_height": "-99999999999999999999"},
        {"min_megapixels": "inf"},
        {"min_megapixels": "1e309"},
        {"max_megapixels": "-inf"},
        {"min_aspect": "nan"},
        {"max_aspect": "NaN"},
    ],
)
def test_range_bounds_beyond_what_elasticsearch_holds_are_refused(query):
    detail = refused(parse_params, query, default_limit=20, max_limit=100).detail
    assert next(iter(query)) in detail


def test_a_date_only_upper_bound_takes_in_its_whole_day():
    params = parse_params({"created_from": "2026-11-26", "created_to": "2026-11-26", "captured_to": "2026-11-26"}, default_limit=20, max_limit=100)
    ranges = [c["range"] for c in build_search(params)["query"]["bool"]["filter"]]
    assert {"created_at": {"gte": "2026-11-26T00:00:00+00:00", "lte": "2026-11-26T23:59:59.999999+00:00"}} in ranges
    assert {"captured_at": {"lte": "2026-11-26T23:59:59.999999+00:00"}} in ranges
    # A time is taken as given.
    timed = parse_params({"created_to": "2026-11-26T00:00:00"}, default_limit=20, max_limit=100)
    assert timed.ranges["created_at"][1].isoformat() == "2026-11-26T00:00:00+00:00"


def test_a_repeated_parameter_is_refused_not_dropped():
    problem = refused(single_values, MultiDict([("labels", "zebra"), ("labels", "giraffe"), ("limit", "5")]))
    assert problem.type.endswith("/repeated-parameter") and "labels=a,b" in problem.detail
    assert single_values(MultiDict([("labels", "zebra,giraffe"), ("limit", "5")])) == {"labels": "zebra,giraffe", "limit": "5"}


@pytest.mark.parametrize("limit", ["٣", "²", "1_0", " 5"])
def test_a_limit_takes_ascii_digits_only(limit):
    assert "limit" in refused(parse_params, {"limit": limit}, default_limit=20, max_limit=100).detail
