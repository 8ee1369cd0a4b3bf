"""Filters, sorting and facets as Elasticsearch clauses."""

from services.search.domain.facets import facet_buckets
from services.search.domain.params import parse_params
from services.search.domain.query import build_search


def body(**query):
    return build_search(parse_params(query, default_limit=20, max_limit=100), facet_size=7)


def test_label_filters_any_all_none_with_names_normalised():
    query = body(labels="Traffic_Light,Car", labels_all="person, DOG", labels_none="cat")["query"]["bool"]
    assert {"terms": {"labels": ["traffic light", "car"]}} in query["filter"]
    assert {"term": {"labels": "person"}} in query["filter"] and {"term": {"labels": "dog"}} in query["filter"]
    assert query["must_not"] == [{"terms": {"labels": ["cat"]}}]


def test_keyword_lists_ranges_and_flags():
    query = body(
        tags="Outdoor", formats="JPEG,png", sources="coco", uploaders="u1", annotation_types="bbox",
        min_width="100", max_megapixels="2.5", min_aspect="1", captured_from="2024-01-01",
        created_to="2025-06-30T12:00:00Z", has_annotations="false", near_duplicate="true",
    )["query"]["bool"]
    f = query["filter"]
    assert {"terms": {"tags": ["outdoor"]}} in f
    assert {"terms": {"format": ["jpeg", "png"]}} in f
    assert {"terms": {"source": ["coco"]}} in f and {"terms": {"uploader": ["u1"]}} in f
    assert {"terms": {"annotation_types": ["bbox"]}} in f
    assert {"range": {"width": {"gte": 100}}} in f
    assert {"range": {"megapixels": {"lte": 2.5}}} in f
    assert {"range": {"aspect_ratio": {"gte": 1.0}}} in f
    assert {"range": {"captured_at": {"gte": "2024-01-01T00:00:00+00:00"}}} in f
    assert {"range": {"created_at": {"lte": "2025-06-30T12:00:00+00:00"}}} in f
    assert {"term": {"is_near_duplicate": True}} in f
    assert query["must_not"] == [{"range": {"annotation_count": {"gt": 0}}}]


def test_sorts_end_with_the_id_tie_breaker():
    assert body(sort="megapixels")["sort"] == [{"megapixels": {"order": "asc"}}, {"image_id": {"order": "asc"}}]
    assert body(sort="relevance", q="cat")["sort"][0] == {"_score": {"order": "desc"}}


def test_facets_only_when_asked_and_only_on_the_first_page():
    aggs = body(facets="labels,resolution,created")["aggs"]
    assert aggs["labels"] == {"terms": {"field": "labels", "size": 7}}
    assert aggs["resolution"]["range"]["field"] == "megapixels"
    assert aggs["created"]["date_histogram"]["calendar_interval"] == "month"
    params = parse_params({"facets": "labels"}, default_limit=20, max_limit=100)
    assert "aggs" not in build_search(params, after=[1, "a"])
    assert "aggs" not in body()


def test_facet_buckets_take_the_response_shape():
    aggs = {
        "labels": {"buckets": [{"key": "person", "doc_count": 3}]},
        "created": {"buckets": [{"key": 1, "key_as_string": "2026-01", "doc_count": 2}]},
    }
    assert facet_buckets(aggs) == {
        "labels": [{"value": "person", "count": 3}],
        "created": [{"value": "2026-01", "count": 2}],
    }
