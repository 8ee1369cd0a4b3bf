import pytest

from services.search.domain.similar_params import parse_similar
from shared.problems import Problem


def parse(**query):
    return parse_similar(query, default_radius=10, max_radius=24, max_k=100)


def test_defaults_and_k():
    assert parse().model_dump() == {"kind": "phash", "radius": 10, "k": None}
    assert parse(k="5").model_dump() == {"kind": "phash", "radius": None, "k": 5}
    assert parse(k="5", radius="3", hash="dhash").model_dump() == {"kind": "dhash", "radius": 3, "k": 5}


@pytest.mark.parametrize(("query", "fragment"), [({"radius": "30"}, "between 0 and 24"), ({"k": "0"}, "between 1 and 100"), ({"hash": "md5"}, "hash must be one of"), ({"r": "1"}, "Unknown parameter(s) r")])
def test_bad_similarity_parameters(query, fragment):
    with pytest.raises(Problem) as caught:
        parse(**query)
    assert caught.value.status == 400 and fragment in caught.value.detail
