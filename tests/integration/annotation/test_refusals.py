"""Bodies and parameters that used to answer 500 (and sometimes stored what broke every later read):
each is refused with a 4xx and a reason, and nothing of it is stored."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from services.annotation.adapters.store import ANNOTATIONS, LABELS
from tests.integration.annotation.test_annotations_api import BOX, create

pytestmark = pytest.mark.integration

HUGE = int("9" * 400)


def cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


async def problem(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    return await response.json()


async def test_attributes_null_is_refused_and_never_stored(annotation_client, image_id, mongo_db):
    created = await create(annotation_client, image_id, attributes={"k": 1})
    url = f"/v1/annotations/{created['id']}"
    refused = await annotation_client.patch(url, json={"attributes": None}, headers={"If-Match": '"1"'})
    assert (await problem(refused, 422))["reason"] == "attributes_shape"
    got = await annotation_client.get(url)
    assert got.status == 200 and (await got.json())["attributes"] == {"k": 1} and got.headers["ETag"] == '"1"'
    cleared = await annotation_client.patch(url, json={"score": None, "attributes": {}}, headers={"If-Match": '"1"'})
    assert cleared.status == 200 and (await cleared.json())["attributes"] == {}


async def test_a_version_stored_with_null_attributes_still_reads(annotation_client, image_id, mongo_db):
    """What the old PATCH stored: GET, the image's listing and a stale PATCH's 'current' all answer."""
    created = await create(annotation_client, image_id)
    await mongo_db[ANNOTATIONS].update_one({"_id": created["id"]}, {"$set": {"attributes": None}})
    url = f"/v1/annotations/{created['id']}"
    assert (await (await annotation_client.get(url)).json())["attributes"] == {}
    listing = await annotation_client.get(f"/v1/images/{image_id}/annotations")
    assert listing.status == 200
    stale = await problem(await annotation_client.patch(url, json={"score": 0.5}, headers={"If-Match": '"7"'}), 412)
    assert stale["current"]["attributes"] == {}


@pytest.mark.parametrize(("patch", "reason"), [({"label": None}, "label_name"), ({"type": None}, "unknown_type")])
async def test_label_or_type_null_is_422(annotation_client, image_id, patch, reason):
    created = await create(annotation_client, image_id)
    refused = await annotation_client.patch(f"/v1/annotations/{created['id']}", json=patch, headers={"If-Match": '"1"'})
    assert (await problem(refused, 422))["reason"] == reason


async def test_bulk_update_reports_a_null_label_per_item_beside_the_committed_ones(annotation_client, image_id):
    a1, a2 = await create(annotation_client, image_id), await create(annotation_client, image_id)
    items = [
        {"id": a1["id"], "version": 1, "patch": {"score": 0.9}},
        {"id": a2["id"], "version": 1, "patch": {"label": None}},
        {"id": a2["id"], "version": 1, "patch": {"attributes": None}},
        {"id": a2["id"], "version": 1, "patch": {"bbox": [1, 1, HUGE, 3]}},
    ]
    response = await annotation_client.post("/v1/annotations/bulk-update", json={"items": items})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert [r["status"] for r in body["results"]] == [200, 422, 422, 422]
    assert [r.get("reason") for r in body["results"]] == [None, "label_name", "attributes_shape", "not_numbers"]
    assert body["updated"] == 1 and body["results"][0]["version"] == 2


async def test_a_huge_integer_in_geometry_is_not_numbers(annotation_client, image_id):
    response = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "bbox": [1, 1, HUGE, 3]})
    assert (await problem(response, 422))["reason"] == "not_numbers"
    items = [{"image_id": image_id, **BOX}, {"image_id": image_id, **BOX, "bbox": [1, 1, HUGE, 3]}]
    bulk = await annotation_client.post("/v1/annotations/bulk", json={"items": items})
    assert bulk.status == 200
    body = await bulk.json()
    assert [r["status"] for r in body["results"]] == [201, 422] and body["results"][1]["reason"] == "not_numbers"


async def test_revert_to_a_version_beyond_64_bits_is_refused(annotation_client, image_id):
    created = await create(annotation_client, image_id)
    url = f"/v1/annotations/{created['id']}/revert"
    response = await annotation_client.post(url, json={"version": 2**63}, headers={"If-Match": '"1"'})
    await problem(response, 422)
    missing = await annotation_client.post(url, json={"version": 2**63 - 1}, headers={"If-Match": '"1"'})
    await problem(missing, 404)


@pytest.mark.parametrize("value", ["abc", {"$gt": 1}, 1e30, 2**63, -1, True, [1]])
async def test_history_cursors_are_versions_or_400(annotation_client, image_id, value):
    created = await create(annotation_client, image_id)
    response = await annotation_client.get(f"/v1/annotations/{created['id']}/history", params={"cursor": cursor(value)})
    assert "cursor" in (await problem(response, 400))["detail"]


async def test_a_cursor_nested_past_the_parser_is_400(annotation_client):
    deep = base64.urlsafe_b64encode(b"[" * 5000).decode()
    await problem(await annotation_client.get("/v1/labels", params={"cursor": deep}), 400)


@pytest.mark.parametrize("path", ["/v1/labels", "/v1/users", "/v1/images/{image_id}/annotations"])
@pytest.mark.parametrize("value", [{"$gt": ""}, 5, None])
async def test_id_and_name_cursors_are_text_or_400(annotation_client, image_id, path, value):
    response = await annotation_client.get(path.format(image_id=image_id), params={"cursor": cursor(value)})
    await problem(response, 400)


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
async def test_as_of_beyond_the_utc_calendar_is_400(annotation_client, image_id, when):
    response = await annotation_client.get(f"/v1/images/{image_id}/annotations", params={"as_of": when})
    assert "as_of" in (await problem(response, 400))["detail"]
    fine = await annotation_client.get(f"/v1/images/{image_id}/annotations", params={"as_of": "9999-12-31T23:59:59+05:00"})
    assert fine.status == 200


@pytest.mark.parametrize("path", ["/v1/labels", "/v1/images/{image_id}/annotations", "/v1/annotations/{annotation_id}/history"])
async def test_limit_takes_only_ascii_digits(annotation_client, image_id, path):
    created = await create(annotation_client, image_id)
    url = path.format(image_id=image_id, annotation_id=created["id"])
    await problem(await annotation_client.get(url, params={"limit": "²"}), 400)
    await problem(await annotation_client.get(url, params={"limit": "١٢"}), 400)  # Arabic-Indic digits


async def test_if_match_takes_only_ascii_digits(annotation_client, image_id):
    created = await create(annotation_client, image_id)
    response = await annotation_client.patch(f"/v1/annotations/{created['id']}", json={"score": 0.1}, headers={"If-Match": '"²"'})
    await problem(response, 400)


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("ids", [{"a.b": "1"}, {"": "1"}, {"$where": "1"}, {"coco": "x" * 201}])
async def test_external_id_schemes_that_mongodb_reads_as_paths_are_422(annotation_client, mongo_db, ids):
    created = await (await annotation_client.post("/v1/labels", json={"name": unique("ext")})).json()
    url = f"/v1/labels/{created['id']}"
    assert (await problem(await annotation_client.patch(url, json={"external_ids": ids}), 422))["reason"] == "external_ids"
    stored = await mongo_db[LABELS].find_one({"_id": created["id"]})
    assert stored["external_ids"] == {}
    assert (await annotation_client.get(url)).status == 200
    new = await annotation_client.post("/v1/labels", json={"name": unique("ext"), "external_ids": ids})
    assert (await problem(new, 422))["reason"] == "external_ids"
    again = await annotation_client.post("/v1/labels", json={"name": created["name"], "external_ids": ids})
    assert (await problem(again, 422))["reason"] == "external_ids"


async def test_a_label_stored_with_a_dotted_scheme_still_reads(annotation_client, mongo_db):
    created = await (await annotation_client.post("/v1/labels", json={"name": unique("dotted")})).json()
    await mongo_db[LABELS].update_one({"_id": created["id"]}, {"$set": {"external_ids.a.b": "1"}})
    got = await annotation_client.get(f"/v1/labels/{created['id']}")
    assert got.status == 200 and (await got.json())["external_ids"] == {"a.b": "1"}
    resolved = await annotation_client.get("/v1/labels/resolve", params={"name": created["name"]})
    assert resolved.status == 200


async def test_merging_a_parent_into_its_child_leaves_no_cycle(annotation_client):
    parent = await (await annotation_client.post("/v1/labels", json={"name": unique("P")})).json()
    child = await (await annotation_client.post("/v1/labels", json={"name": unique("C"), "parent": parent["name"]})).json()
    sibling = await (await annotation_client.post("/v1/labels", json={"name": unique("S"), "parent": parent["name"]})).json()
    assert child["parent_id"] == parent["id"]
    merged = await annotation_client.post(f"/v1/labels/{parent['id']}/merge", json={"into": child["id"]})
    assert merged.status == 200
    assert (await merged.json())["parent_id"] is None  # the merged label's parent: none
    assert (await (await annotation_client.get(f"/v1/labels/{sibling['id']}")).json())["parent_id"] == child["id"]


async def test_merging_a_label_into_its_grandchild_keeps_a_tree(annotation_client):
    top = await (await annotation_client.post("/v1/labels", json={"name": unique("top")})).json()
    a = await (await annotation_client.post("/v1/labels", json={"name": unique("a"), "parent": top["name"]})).json()
    b = await (await annotation_client.post("/v1/labels", json={"name": unique("b"), "parent": a["name"]})).json()
    c = await (await annotation_client.post("/v1/labels", json={"name": unique("c"), "parent": b["name"]})).json()
    merged = await (await annotation_client.post(f"/v1/labels/{a['id']}/merge", json={"into": c["id"]})).json()
    assert merged["parent_id"] == top["id"]  # c takes a's place under top
    assert (await (await annotation_client.get(f"/v1/labels/{b['id']}")).json())["parent_id"] == c["id"]


async def test_control_characters_are_dropped_from_label_names_and_lone_surrogates_refused(annotation_client):
    name = unique("probe\u0001ctl")
    created = await annotation_client.post("/v1/labels", json={"name": name})
    assert created.status == 201 and (await created.json())["name"] == name.replace("\u0001", "").casefold()
    surrogate = await annotation_client.post("/v1/labels", json={"name": "probe\udcffctl"})  # no UTF-8 for it
    assert surrogate.status == 422


@pytest.mark.parametrize(("name", "reason"), [("x" * 201, "label_name_too_long")])
async def test_label_names_are_bounded_and_printable(annotation_client, image_id, name, reason):
    assert (await problem(await annotation_client.post("/v1/labels", json={"name": name}), 422))["reason"] == reason
    on_annotation = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "label": name})
    assert (await problem(on_annotation, 422))["reason"] == reason
    created = await (await annotation_client.post("/v1/labels", json={"name": unique("ok")})).json()
    alias = await annotation_client.post(f"/v1/labels/{created['id']}/aliases", json={"alias": name})
    assert (await problem(alias, 422))["reason"] == reason
    rename = await annotation_client.patch(f"/v1/labels/{created['id']}", json={"name": name})
    assert (await problem(rename, 422))["reason"] == reason


async def test_label_descriptions_are_bounded(annotation_client):
    from services.annotation.domain.fields import MAX_DESCRIPTION_CHARS

    too_long = "d" * (MAX_DESCRIPTION_CHARS + 1)
    refused = await annotation_client.post("/v1/labels", json={"name": unique("described"), "description": too_long})
    assert "description" in str((await problem(refused, 422))["errors"])
    created = await annotation_client.post("/v1/labels", json={"name": unique("described"), "description": too_long[:-1]})
    assert created.status == 201
    label = await created.json()
    patched = await annotation_client.patch(f"/v1/labels/{label['id']}", json={"description": too_long})
    assert "description" in str((await problem(patched, 422))["errors"])


async def test_rle_counts_with_non_ascii_characters_are_422(annotation_client, image_id):
    # A 15x10 box's counts with its '?' as 'é': replaced by '?' on the way to ASCII, it decoded as the box.
    rle = {"size": [480, 640], "counts": "P[2?a>00000000000000000PoT9".replace("?", "é")}
    response = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "type": "mask", "bbox": None, "rle": rle})
    assert (await problem(response, 422))["reason"] == "rle_counts"


async def test_a_polygon_s_bbox_is_its_bounds(annotation_client, image_id):
    ring = [[0, 0, 10, 0, 10, 10]]
    far = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "type": "polygon", "polygon": ring, "bbox": [100, 100, 50, 50]})
    assert (await problem(far, 422))["reason"] == "bbox_mismatch"
    derived = await create(annotation_client, image_id, type="polygon", polygon=ring, bbox=None)
    assert derived["bbox"] == [0, 0, 10, 10]
    # Moving the polygon moves its box with it (the old box is not carried over).
    moved = await annotation_client.patch(
        f"/v1/annotations/{derived['id']}", json={"polygon": [[100, 100, 120, 100, 120, 130]]}, headers={"If-Match": '"1"'}
    )
    assert moved.status == 200 and (await moved.json())["bbox"] == [100, 100, 20, 30]


async def test_deeply_nested_attributes_are_422(annotation_client, image_id):
    deep: dict = {}
    for _ in range(190):
        deep = {"a": deep}
    response = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "attributes": deep})
    assert (await problem(response, 422))["reason"] == "attributes_too_deep"
    created = await create(annotation_client, image_id)
    patched = await annotation_client.patch(f"/v1/annotations/{created['id']}", json={"attributes": deep}, headers={"If-Match": '"1"'})
    assert (await problem(patched, 422))["reason"] == "attributes_too_deep"
    big = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "attributes": {"x": "y" * 70_000}})
    assert (await problem(big, 422))["reason"] == "attributes_too_large"
    items = [{"image_id": image_id, **BOX}, {"image_id": image_id, **BOX, "attributes": deep}]
    bulk = await (await annotation_client.post("/v1/annotations/bulk", json={"items": items})).json()
    assert [r["status"] for r in bulk["results"]] == [201, 422]


async def test_an_unknown_type_has_reason_unknown_type(annotation_client, image_id):
    response = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "type": "cuboid"})
    assert (await problem(response, 422))["reason"] == "unknown_type"
    created = await create(annotation_client, image_id)
    patched = await annotation_client.patch(f"/v1/annotations/{created['id']}", json={"type": "cuboid"}, headers={"If-Match": '"1"'})
    assert (await problem(patched, 422))["reason"] == "unknown_type"
