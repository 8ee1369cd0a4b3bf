"""The shared authorisation rules, enforced by each service against real key records."""

import uuid
from datetime import UTC, datetime

import pytest

from shared.auth import Role, generate_key, hash_key
from shared.auth.guard import API_KEYS, USERS
from tests.conftest import ADMIN_KEY
from tests.photos import skimage_photo
from tests.uploads import image_form


@pytest.fixture
async def key_for(mongo_db):
    made = []

    async def make(role: Role) -> dict[str, str]:
        user_id = f"user-{uuid.uuid4().hex[:8]}"
        key = generate_key()
        await mongo_db[USERS].insert_one({"_id": user_id, "name": user_id, "role": role.value, "disabled": False})
        await mongo_db[API_KEYS].insert_one({"_id": hash_key(key), "user_id": user_id, "revoked_at": None})
        made.append(user_id)
        return {"Authorization": f"Bearer {key}"}

    yield make
    await mongo_db[USERS].delete_many({"_id": {"$in": made}})
    await mongo_db[API_KEYS].delete_many({"user_id": {"$in": made}})


async def test_no_key_is_401_with_a_challenge(ingest_client, search_client):
    for client, path in ((ingest_client, "/v1/images/x"), (search_client, "/v1/search")):
        response = await client.get(path, headers={"Authorization": ""})
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "API key" in (await response.json())["detail"]


async def test_unknown_key_is_401(search_client):
    response = await search_client.get("/v1/search", headers={"Authorization": "Bearer ick_nope"})
    assert response.status == 401
    assert "unknown, revoked or expired" in (await response.json())["detail"]


async def test_reader_reads_but_may_not_upload(ingest_client, search_client, key_for):
    reader = await key_for(Role.READER)
    assert (await search_client.get("/v1/search", headers=reader)).status == 200
    response = await ingest_client.post("/v1/images", data=image_form(skimage_photo("moon.png")), headers=reader)
    assert response.status == 403
    problem = await response.json()
    assert (problem["role"], problem["needs"]) == ("reader", "ingest")


async def test_uploader_may_upload(ingest_client, key_for):
    uploader = await key_for(Role.UPLOADER)
    response = await ingest_client.post("/v1/images", data=image_form(skimage_photo("moon.png"), "moon.png"), headers=uploader)
    assert response.status in (200, 201)


async def test_revoked_key_is_refused(search_client, key_for, mongo_db):
    headers = await key_for(Role.READER)
    key = headers["Authorization"].split()[1]
    await mongo_db[API_KEYS].update_one({"_id": hash_key(key)}, {"$set": {"revoked_at": datetime.now(UTC)}})
    assert (await search_client.get("/v1/search", headers=headers)).status == 401


async def test_health_and_metrics_need_no_key(search_client):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await search_client.get(path, headers={"Authorization": ""})).status == 200


@pytest.mark.parametrize("header", [b"Authorization: Bearer \xff\xfe\xe9", b"X-API-Key: \xc3\x28abc", b"Authorization: Bearer " + b"k" * 5000])
async def test_a_key_no_system_made_is_401_not_500(search_client, header):
    import asyncio

    url = search_client.make_url("/v1/search")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(b"GET /v1/search HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


async def test_the_key_cache_is_bounded(mongo_db, key_for):
    from shared.auth.guard import Authenticator

    authenticator = Authenticator(mongo_db, anonymous_read=False, cache_entries=20)
    for _ in range(60):
        assert await authenticator.principal_for(generate_key()) is None
    assert len(authenticator._cache) == 20
    known = (await key_for(Role.READER))["Authorization"].split()[1]
    assert (await authenticator.principal_for(known)).role is Role.READER


@pytest.mark.parametrize(
    "port_of, path",
    [("ingest_client", "/v1/images:fetch"), ("search_client", "/v1/search/similar")],
)
async def test_a_body_that_is_not_the_gzip_it_claims_is_400_on_any_endpoint(request, port_of, path):
    import asyncio

    client = request.getfixturevalue(port_of)
    url = client.make_url(path)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    body = b"\x00 not gzip at all"
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\n"
    writer.write(head.encode() + b"Content-Encoding: gzip\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400") and b"malformed-body" in answer, answer[:300]
