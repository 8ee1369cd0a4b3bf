"""Fetching by URL: the SSRF guard proven against local listeners that must receive no connection."""

import hashlib
from datetime import datetime

from services.ingest.adapters.repository import IMAGES, REJECTIONS
from tests.photos import skimage_photo

PHOTO = skimage_photo("motorcycle_right.png")
SHA = hashlib.sha256(PHOTO).hexdigest()


async def _fetch(client, *urls, **extra):
    response = await client.post("/v1/images:fetch", json={"urls": list(urls), **extra})
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


async def test_loopback_private_link_local_and_mapped_addresses_are_never_contacted(ingest_client, listen, mongo_db):
    target = await listen("127.0.0.1")
    target.routes["/photo.png"] = (200, {"Content-Type": "image/png"}, PHOTO)
    urls = [
        target.url("/photo.png"),
        f"http://localhost:{target.port}/photo.png",
        f"http://[::ffff:127.0.0.1]:{target.port}/photo.png",
        f"http://[::1]:{target.port}/photo.png",
        f"http://0.0.0.0:{target.port}/photo.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://10.0.0.1/photo.png",
        "http://192.168.0.1/photo.png",
        "http://2130706433/photo.png",  # 127.0.0.1 as one decimal number
    ]
    items = await _fetch(ingest_client, *urls)
    for url, item in zip(urls, items, strict=True):
        assert (item["status"], item["reason"]) == (422, "blocked_address"), (url, item)
        assert "not fetched" in item["detail"]
    assert target.connections == 0
    assert await mongo_db[IMAGES].find_one({"_id": SHA}) is None
    assert await mongo_db[REJECTIONS].count_documents({"reason": "blocked_address"}) >= len(urls)


async def test_other_schemes_are_refused(ingest_client):
    items = await _fetch(ingest_client, "file:///etc/passwd", "ftp://example.org/a.jpg", "gopher://x/", "not a url")
    assert all(item["reason"] == "invalid_url" for item in items), items


async def test_redirect_to_a_blocked_address_is_not_followed(make_ingest, listen):
    trusted = await listen("127.0.0.2")  # allow-listed: stands in for a public server
    inside = await listen("127.0.0.1")
    inside.routes["/secret"] = (200, {}, PHOTO)
    trusted.routes["/go"] = (302, {"Location": inside.url("/secret")}, b"")
    trusted.routes["/go-mapped"] = (301, {"Location": f"http://[::ffff:127.0.0.1]:{inside.port}/secret"}, b"")
    client = await make_ingest(fetch_allow_networks=["127.0.0.2/32"], consume_submissions=False)
    items = await _fetch(client, trusted.url("/go"), trusted.url("/go-mapped"))
    assert [item["reason"] for item in items] == ["blocked_address", "blocked_address"]
    assert trusted.connections == 2
    assert inside.connections == 0


async def test_allow_listed_fetch_works_follows_three_redirects_and_checks_sha256(make_ingest, listen, mongo_db):
    server = await listen("127.0.0.1")
    server.routes["/photo.png"] = (200, {"Content-Type": "image/png"}, PHOTO)
    server.routes["/r1"] = (302, {"Location": "/r2"}, b"")
    server.routes["/r2"] = (307, {"Location": "/r3"}, b"")
    server.routes["/r3"] = (301, {"Location": "/photo.png"}, b"")
    server.routes["/r0"] = (302, {"Location": "/r1"}, b"")
    server.routes["/gone"] = (404, {}, b"")
    client = await make_ingest(fetch_allow_networks=["127.0.0.1/32"], consume_submissions=False, fetch_max_bytes=len(PHOTO) + 10)
    items = await _fetch(client, server.url("/r1"), server.url("/r0"), server.url("/gone"), tags=["Motor Bike"], licence="CC0")
    assert items[0]["status"] in (200, 201) and items[0]["id"] == SHA
    assert items[1]["reason"] == "too_many_redirects"
    assert items[2]["reason"] == "http_error" and "404" in items[2]["detail"]
    doc = await mongo_db[IMAGES].find_one({"_id": SHA})
    assert doc["origin"]["kind"] == "url" and doc["origin"]["licence"] == "CC0"
    assert doc["origin"]["uri"] == server.url("/r1") and doc["origin"]["fetched_at"] is not None
    assert doc["tags"] == ["motor bike"]

    wrong = await _fetch(client, server.url("/photo.png"), sha256=["0" * 64])
    assert wrong[0]["reason"] == "checksum_mismatch"
    # Listed with where it came from, fetch time included (a datetime: the listing once answered 500 on it).
    listed = await client.get("/v1/rejections", params={"reason": "checksum_mismatch"})
    assert listed.status == 200, await listed.text()
    mine = [r for r in (await listed.json())["items"] if (r["origin"] or {}).get("uri") == server.url("/photo.png")]
    assert mine and datetime.fromisoformat(mine[0]["origin"]["fetched_at"]).tzinfo is not None


async def test_fetch_caps_bytes(make_ingest, listen):
    server = await listen("127.0.0.1")
    server.routes["/big.png"] = (200, {}, PHOTO)
    client = await make_ingest(fetch_allow_networks=["127.0.0.1/32"], consume_submissions=False, fetch_max_bytes=1000)
    items = await _fetch(client, server.url("/big.png"))
    assert items[0]["reason"] == "too_large"
