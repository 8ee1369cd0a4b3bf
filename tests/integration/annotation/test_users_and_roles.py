"""Users, keys and the one rule set, enforced by all three services: 401 without a key,
403 with the wrong role, problem details either way."""

from __future__ import annotations

import pytest

from tests.conftest import eventually

pytestmark = pytest.mark.integration


async def make_user(client, role: str) -> tuple[str, dict[str, str]]:
    user = await client.post("/v1/users", json={"name": f"a {role}", "role": role})
    assert user.status == 201
    user_id = (await user.json())["id"]
    issued = await client.post(f"/v1/users/{user_id}/keys", json={"label": "tests"})
    assert issued.status == 201
    body = await issued.json()
    assert body["key"].startswith("ick_") and body["prefix"] == body["key"][:10]
    return user_id, {"Authorization": f"Bearer {body['key']}"}


async def test_keys_are_shown_once_and_stored_hashed(annotation_client, mongo_db):
    user_id, headers = await make_user(annotation_client, "reader")
    listing = await (await annotation_client.get(f"/v1/users/{user_id}/keys")).json()
    [record] = listing["items"]
    assert "key" not in record
    key = headers["Authorization"].removeprefix("Bearer ")
    stored = await mongo_db["api_keys"].find_one({"user_id": user_id})
    assert key not in str(stored) and stored["_id"] == record["id"]
    me = await (await annotation_client.get("/v1/me", headers=headers)).json()
    assert me == {"id": user_id, "name": "a reader", "role": "reader"}


async def test_roles_hold_in_the_annotation_service(annotation_client, image_id):
    _, reader = await make_user(annotation_client, "reader")
    _, annotator = await make_user(annotation_client, "annotator")
    _, other_annotator = await make_user(annotation_client, "annotator")
    _, uploader = await make_user(annotation_client, "uploader")
    box = {"image_id": image_id, "type": "bbox", "label": "roles", "bbox": [1, 1, 5, 5]}

    no_key = await annotation_client.get("/v1/labels", headers={"Authorization": ""})
    assert no_key.status == 401 and no_key.content_type == "application/problem+json"
    assert (await annotation_client.get("/v1/labels", headers={"Authorization": "Bearer ick_wrong"})).status == 401
    assert (await annotation_client.get("/v1/labels", headers=reader)).status == 200
    for headers in (reader, uploader):
        denied = await annotation_client.post("/v1/annotations", json=box, headers=headers)
        assert denied.status == 403 and (await denied.json())["needs"] == "annotate"
    created = await annotation_client.post("/v1/annotations", json=box, headers=annotator)
    assert created.status == 201
    url = f"/v1/annotations/{(await created.json())['id']}"
    # Labels and users are the admins' business.
    assert (await annotation_client.post("/v1/labels", json={"name": "x"}, headers=annotator)).status == 403
    assert (await annotation_client.get("/v1/users", headers=annotator)).status == 403
    # Annotators edit any annotation, but delete only their own.
    edited = await annotation_client.patch(url, json={"score": 0.3}, headers={**other_annotator, "If-Match": '"1"'})
    assert edited.status == 200
    foreign = await annotation_client.delete(url, headers={**other_annotator, "If-Match": '"2"'})
    assert foreign.status == 403 and (await foreign.json())["detail"]
    assert (await annotation_client.delete(url, headers={**annotator, "If-Match": '"2"'})).status == 200


async def test_roles_hold_in_ingest_and_search_too(annotation_client, ingest_client, search_client):
    _, reader = await make_user(annotation_client, "reader")
    _, uploader = await make_user(annotation_client, "uploader")
    anonymous = {"Authorization": ""}
    for client, path in ((ingest_client, "/v1/images/abc"), (search_client, "/v1/search")):
        response = await client.get(path, headers=anonymous)
        assert response.status == 401 and response.content_type == "application/problem+json"
        assert (await client.get(path, headers=reader)).status in (200, 404)
    upload = await ingest_client.post("/v1/images", data=b"", headers=reader)
    assert upload.status == 403 and (await upload.json())["needs"] == "ingest"
    # The uploader gets past authorisation (and is then told the body is not multipart).
    assert (await ingest_client.post("/v1/images", data=b"", headers=uploader)).status not in (401, 403)


async def test_revoked_and_disabled_keys_stop_working(annotation_client):
    user_id, headers = await make_user(annotation_client, "reader")
    assert (await annotation_client.get("/v1/me", headers=headers)).status == 200
    [record] = (await (await annotation_client.get(f"/v1/users/{user_id}/keys")).json())["items"]
    revoked = await annotation_client.delete(f"/v1/users/{user_id}/keys/{record['id']}")
    assert revoked.status == 200 and (await revoked.json())["revoked_at"]

    async def refused():  # keys are cached for a few seconds per process
        return (await annotation_client.get("/v1/me", headers=headers)).status == 401

    await eventually(refused)
    other_id, other = await make_user(annotation_client, "annotator")
    assert (await annotation_client.patch(f"/v1/users/{other_id}", json={"disabled": True})).status == 200

    async def disabled():
        return (await annotation_client.get("/v1/me", headers=other)).status == 401

    await eventually(disabled)


async def test_bad_user_input_is_422(annotation_client):
    response = await annotation_client.post("/v1/users", json={"name": "x", "role": "overlord"})
    assert response.status == 422 and (await response.json())["errors"]
