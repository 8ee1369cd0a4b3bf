import pytest

from services.search.domain.cursor import Cursor, decode_cursor, encode_cursor
from services.search.domain.params import parse_params
from services.search.domain.query import build_search, sort_clause
from shared.problems import Problem


def parse(**query):
    return parse_params(query, default_limit=20, max_limit=100)


def test_defaults_match_all_newest_first():
    body = build_search(parse())
    assert body["query"] == {"match_all": {}}
    assert body["sort"] == [{"created_at": {"order": "desc"}}, {"image_id": {"order": "asc"}}]
    assert body["size"] == 20
    assert "search_after" not in body and "aggs" not in body


def test_free_text_uses_simple_query_string_on_fixed_fields():
    body = build_search(parse(q='cat OR "hot dog"'))
    (clause,) = body["query"]["bool"]["must"]
    sqs = clause["simple_query_string"]
    assert sqs["query"] == 'cat OR "hot dog"'
    assert sqs["fields"] == ["text", "tags^2", "labels^2"]
    assert "query_string" not in str(body["query"]).replace("simple_query_string", "")


def test_cursor_round_trip_feeds_search_after():
    cursor = encode_cursor(Cursor(sort="-created_at", after=[1767225600000, "ab" * 32], pit="pit-id"))
    params = parse(cursor=cursor, limit="5")
    decoded = decode_cursor(params.cursor, sort=params.sort, sort_fields=len(sort_clause(params.sort)), filters={})
    assert decoded.after == [1767225600000, "ab" * 32] and decoded.pit == "pit-id"
    assert build_search(params, after=decoded.after)["search_after"] == [1767225600000, "ab" * 32]


def test_a_cursor_from_another_sort_is_refused():
    cursor = encode_cursor(Cursor(sort="-created_at", after=[1, "a"]))
    with pytest.raises(Problem) as caught:
        decode_cursor(cursor, sort="bytes", sort_fields=2, filters={})
    assert caught.value.status == 400 and "sorted by '-created_at'" in caught.value.detail


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"limit": "0"}, "between 1 and 100"),
        ({"limit": "101"}, "between 1 and 100"),
        ({"limit": "ten"}, "integer"),
        ({"color": "red"}, "Unknown parameter(s) color"),
        ({"sort": "colour"}, "sort must be one of"),
        ({"sort": "relevance"}, "needs a q"),
        ({"facets": "labels,moods"}, "Unknown facet(s) moods"),
        ({"min_width": "100", "max_width": "10"}, "width range is inverted"),
        ({"created_from": "2025-01-02", "created_to": "2025-01-01"}, "created range is inverted"),
        ({"min_megapixels": "big"}, "min_megapixels must be a number"),
        ({"captured_from": "yesterday"}, "ISO 8601"),
        ({"has_annotations": "maybe"}, "true or false"),
    ],
)
def test_bad_parameters_are_400_problems_that_say_why(query, fragment):
    with pytest.raises(Problem) as caught:
        parse(**query)
    assert caught.value.status == 400
    assert fragment in caught.value.detail


@pytest.mark.parametrize("cursor", ["not-a-cursor!", encode_cursor(Cursor(sort="-created_at", after=[1]))])
def test_foreign_cursors_are_400(cursor):
    with pytest.raises(Problem) as caught:
        decode_cursor(cursor, sort="-created_at", sort_fields=2, filters={})
    assert caught.value.status == 400 and "cursor" in caught.value.detail


def test_disjunctive_facet_counts_move_the_counted_facets_own_filters_to_a_post_filter():
    body = build_search(parse(labels="cat,dog", formats="jpeg", tags="x", facets="labels,formats,resolution", facet_counts="disjunctive"))
    labels, formats = {"terms": {"labels": ["cat", "dog"]}}, {"terms": {"format": ["jpeg"]}}
    assert body["query"] == {"bool": {"filter": [{"terms": {"tags": ["x"]}}]}}  # tags is not a facet asked for: it filters all
    assert body["post_filter"] == {"bool": {"filter": [labels, formats]}}
    aggs = body["aggs"]
    assert aggs["labels"] == {"filter": {"bool": {"filter": [formats]}}, "aggs": {"labels": {"terms": {"field": "labels", "size": 20}}}}
    assert aggs["formats"]["filter"] == {"bool": {"filter": [labels]}}
    assert aggs["resolution"]["filter"] == {"bool": {"filter": [labels, formats]}}  # a facet with no filter of its own: within all
    # Later pages have no facets: their filters are the query's again, the same hits.
    later = build_search(parse(labels="cat,dog", formats="jpeg", tags="x", facets="labels", facet_counts="disjunctive"), after=[1, "a"])
    assert "post_filter" not in later and len(later["query"]["bool"]["filter"]) == 3


def test_facet_counts_default_to_the_results_and_refuse_other_modes():
    body = build_search(parse(labels="cat", facets="labels"))
    assert "post_filter" not in body and body["aggs"]["labels"] == {"terms": {"field": "labels", "size": 20}}
    with pytest.raises(Problem) as caught:
        parse(facet_counts="both")
    assert "facet_counts must be one of results, disjunctive" in caught.value.detail
