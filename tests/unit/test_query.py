import pytest

from services.search.domain.query import SORT, build_search, decode_cursor, encode_cursor, parse_params
from shared.problems import Problem


def parse(**query):
    return parse_params(query, default_limit=20, max_limit=100)


def test_defaults_match_all_newest_first():
    body = build_search(parse())
    assert body["query"] == {"match_all": {}}
    assert body["sort"] == SORT
    assert body["size"] == 20
    assert "search_after" not in body


def test_free_text_uses_simple_query_string_on_fixed_fields():
    body = build_search(parse(q='cat OR "hot dog"'))
    sqs = body["query"]["simple_query_string"]
    assert sqs["query"] == 'cat OR "hot dog"'
    assert sqs["fields"] == ["text", "tags^2"]
    assert "query_string" not in body["query"]


def test_cursor_round_trip_feeds_search_after():
    cursor = encode_cursor([1767225600000, "ab" * 32])
    params = parse(cursor=cursor, limit="5")
    assert params.limit == 5
    assert build_search(params)["search_after"] == [1767225600000, "ab" * 32]
    assert decode_cursor(cursor) == [1767225600000, "ab" * 32]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"limit": "0"}, "between 1 and 100"),
        ({"limit": "101"}, "between 1 and 100"),
        ({"limit": "ten"}, "integer"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"cursor": encode_cursor([1])}, "cursor"),
        ({"color": "red"}, "Unknown parameter(s) color"),
    ],
)
def test_bad_parameters_are_400_problems_that_say_why(query, fragment):
    with pytest.raises(Problem) as caught:
        parse(**query)
    assert caught.value.status == 400
    assert fragment in caught.value.detail
