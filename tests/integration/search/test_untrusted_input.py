"""Over HTTP: what a caller sends that search cannot use is a 400 problem, never a 500 (tampered cursors,
a cursor sent with other filters, numbers beyond what Elasticsearch holds, repeated parameters, a malformed
multipart body); bytes that are no image are 422, said without a Python repr; an expired cursor is 410;
a date-only upper bound covers its whole day."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import RUN_ID
from shared.cursors import decode_cursor as decode_value
from tests.integration.search.helpers import index_photos, problem, search_json, three_photos

SOURCE = f"untrusted-{RUN_ID}"


def raw_cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture
async def indexed(search_client, mongo_db, bus):
    return await index_photos(search_client, mongo_db, bus, three_photos("untrusted", SOURCE), SOURCE)


@pytest.mark.parametrize(
    "cursor",
    [
        {"sort": "-created_at", "after": ["abc", "x"]},
        {"sort": "-created_at", "after": [{"a": 1}, "x"]},
        {"sort": "-created_at", "after": [None, None]},
        {"sort": "-created_at", "after": [1e30, "x"]},
        {"sort": "-created_at", "after": [1767225600000, "x"], "pit": "Zm9vYmFy"},  # plausible, but not Elasticsearch's
        {"sort": "-created_at", "after": [1767225600000, "x"], "pit": "!!!notbase64"},
    ],
)
async def test_tampered_cursors_are_400_bad_cursor(search_client, cursor):
    response = await search_client.get("/v1/search", params={"limit": "2", "cursor": raw_cursor(cursor)})
    assert (await problem(response, 400))["type"].endswith("/bad-cursor")


@pytest.mark.parametrize(
    ("params", "cursor"),
    [({"sort": "width"}, {"sort": "width", "after": ["wide", "x"]}), ({"sort": "relevance", "q": "x"}, {"sort": "relevance", "after": ["high", "x"]})],
)
async def test_a_cursor_of_the_wrong_types_for_its_sort_is_400(search_client, params, cursor):
    response = await search_client.get("/v1/search", params={**params, "cursor": raw_cursor(cursor)})
    assert (await problem(response, 400))["type"].endswith("/bad-cursor")


async def test_an_expired_cursor_is_410_not_a_missing_index(search_client, es, indexed):
    first = await search_json(search_client, sources=SOURCE, limit="1")
    second = await search_json(search_client, sources=SOURCE, limit="1", cursor=first["next"])  # opens the snapshot
    pit = decode_value(second["next"])["pit"]
    await es.close_point_in_time(id=pit)
    response = await search_client.get("/v1/search", params={"sources": SOURCE, "limit": "1", "cursor": second["next"]})
    assert (await problem(response, 410))["type"].endswith("/cursor-expired")


async def test_a_cursor_sent_with_other_filters_is_400_naming_them_not_an_empty_page(search_client, indexed):
    first = await search_json(search_client, sources=SOURCE, limit="1")
    response = await search_client.get("/v1/search", params={"sources": SOURCE, "labels": "cat", "limit": "1", "cursor": first["next"]})
    body = await problem(response, 400)
    assert body["type"].endswith("/bad-cursor") and "other filters: labels differ" in body["detail"]
    same = await search_json(search_client, sources=SOURCE, limit="1", cursor=first["next"])
    assert len(same["items"]) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"min_width": "99999999999999999999"},
        {"min_bytes": "99999999999999999999"},
        {"min_megapixels": "inf"},
        {"min_megapixels": "1e309"},
        {"max_megapixels": "-inf"},
        {"min_aspect": "nan"},
    ],
)
async def test_range_bounds_elasticsearch_cannot_hold_are_400(search_client, params):
    body = await problem(await search_client.get("/v1/search", params=params), 400)
    assert next(iter(params)) in body["detail"]


async def test_a_date_only_upper_bound_includes_that_day(search_client, indexed):
    page = await search_json(search_client, sources=SOURCE, created_from="2026-01-01", created_to="2026-01-01")
    assert {item["image_id"] for item in page["items"]} == indexed


async def test_a_repeated_parameter_is_400_not_silently_the_first(search_client):
    response = await search_client.get("/v1/search?labels=zebra&labels=giraffe")
    body = await problem(response, 400)
    assert body["type"].endswith("/repeated-parameter") and "labels=a,b" in body["detail"]


@pytest.mark.parametrize("cursor", [raw_cursor("abc"), raw_cursor({"foo": 1}), raw_cursor([1])])
async def test_a_tampered_near_duplicates_cursor_is_400(search_client, cursor):
    response = await search_client.get("/v1/near-duplicates", params={"cursor": cursor})
    assert (await problem(response, 400))["type"].endswith("/bad-cursor")


async def test_a_malformed_multipart_query_image_is_400(search_client):
    response = await search_client.post(
        "/v1/search/similar", data=b"--x\r\nContent-Disp", headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    body = await problem(response, 400)
    assert "multipart" in body["detail"] and body["type"].endswith("/malformed-multipart")  # as ingest names it


async def test_bytes_that_are_no_image_are_422_saying_so_without_a_python_repr(search_client):
    response = await search_client.post("/v1/search/similar", data=b"%PDF-1.4 not an image", headers={"Content-Type": "image/jpeg"})
    assert response.status == 422
    body = await response.json()
    assert body["type"].endswith("/not-an-image") and "no image format" in body["detail"]
    assert "0x" not in body["detail"] and "BytesIO" not in body["detail"]


async def _open_contexts(es) -> int:
    stats = await es.nodes.stats(metric="indices", index_metric="search")
    return sum(node["indices"]["search"]["open_contexts"] for node in stats["nodes"].values())


async def test_the_last_page_closes_the_snapshot_the_pages_read(search_client, es, indexed):
    """A snapshot left open lived its whole keep-alive: 290 at once in a tester's half-hour run, one per
    paging session and one per export by search."""
    before = await _open_contexts(es)
    first = await search_json(search_client, sources=SOURCE, limit="2")
    last = await search_json(search_client, sources=SOURCE, limit="2", cursor=first["next"])  # opens the snapshot
    assert last["next"] is None and len(last["items"]) == 1  # three photos: this is the last page
    assert await _open_contexts(es) <= before  # closed again (others' may expire meanwhile, none opens)
