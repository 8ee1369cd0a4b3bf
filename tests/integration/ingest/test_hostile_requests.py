"""Requests a careless or hostile client sends: each gets a clear 4xx or its own result, never a 500,
and the good files beside a bad one are kept."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import aiohttp
import pytest

from services.ingest.adapters.repository import IMAGES, REJECTIONS
from tests.conftest import ADMIN
from tests.photos import skimage_photo, unique_png

BOUNDARY = "hostile-boundary"


def photo() -> bytes:
    """A real photo with bytes (and so an id) no other test stores."""
    return unique_png(skimage_photo("coffee.png"))


def part(name: str, data: bytes, filename: bytes | None = None) -> bytes:
    disposition = b'Content-Disposition: form-data; name="' + name.encode() + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return b"--" + BOUNDARY.encode() + b"\r\n" + disposition + b"\r\n\r\n" + data + b"\r\n"


def body(*parts: bytes, close: bool = True) -> bytes:
    return b"".join(parts) + (b"--" + BOUNDARY.encode() + b"--\r\n" if close else b"")


async def raw_post(client, path: str, payload: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict]:
    """POST with header bytes exactly as given (aiohttp's client would encode them as UTF-8)."""
    url = client.make_url(path)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: " + url.host.encode(), b"Connection: close", b"Content-Length: " + str(len(payload)).encode()]
    head += [b"Authorization: " + ADMIN["Authorization"].encode()] + [name + b": " + value for name, value in headers]
    writer.write(b"\r\n".join(head) + b"\r\n\r\n" + payload)
    await writer.drain()
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    text = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(text) if text.strip() else {}


MULTIPART = (b"Content-Type", f"multipart/form-data; boundary={BOUNDARY}".encode())


@pytest.mark.parametrize("path", ["/v1/images", "/v1/images:batch"])
@pytest.mark.parametrize(
    "headers, payload",
    [
        ([(b"Content-Type", b"multipart/form-data")], b"no boundary in the content type"),
        ([MULTIPART], b"garbage without any boundary"),
        ([MULTIPART], b""),
        ([MULTIPART], body(part("file", b"\xff\xd8 cut short", b"a.jpg"), close=False)[:-5]),
        ([MULTIPART, (b"Content-Encoding", b"gzip")], b"\x00 not gzip at all"),
    ],
    ids=["no-boundary", "garbage", "empty", "truncated", "bad-gzip"],
)
async def test_a_malformed_multipart_body_is_a_400_problem(ingest_client, path, headers, payload):
    status, problem = await raw_post(ingest_client, path, payload, headers)
    assert status == 400, problem
    assert problem["type"].endswith("/malformed-multipart"), problem
    assert "malformed" in problem["detail"]


async def test_file_names_keep_their_last_segment_in_utf8_and_odd_bytes_fail_no_neighbour(ingest_client, mongo_db):
    files = [photo(), photo(), photo()]
    names = [b"ok-a.jpg", b"\xff\xfe.jpg", b"../../../../tmp/evil\t.jpg"]
    payload = body(*(part("files", data, name) for data, name in zip(files, names, strict=True)))
    status, answer = await raw_post(ingest_client, "/v1/images:batch", payload, [MULTIPART])
    assert status == 200, answer
    assert [item["outcome"] for item in answer["items"]] == ["created"] * 3
    stored = [await mongo_db[IMAGES].find_one({"_id": hashlib.sha256(data).hexdigest()}) for data in files]
    assert [doc["filename"] for doc in stored] == ["ok-a.jpg", "\ufffd\ufffd.jpg", "evil.jpg"]

    status, problem = await raw_post(ingest_client, "/v1/images", body(part("file", b"not an image", b"\xff\xfe.txt")), [MULTIPART])
    assert (status, problem["reason"]) == (422, "not_an_image")
    assert await mongo_db[REJECTIONS].find_one({"filename": "\ufffd\ufffd.txt", "reason": "not_an_image"}) is not None


async def test_an_idempotency_key_that_is_not_utf8_is_a_400(ingest_client):
    payload = body(part("file", photo(), b"k.jpg"))
    status, problem = await raw_post(ingest_client, "/v1/images", payload, [MULTIPART, (b"Idempotency-Key", b"\xe9-key")])
    assert status == 400 and "UTF-8" in problem["detail"], problem
    # If-Match bytes that are not UTF-8 are part of the fingerprint, not an error.
    headers = [MULTIPART, (b"Idempotency-Key", b"key-with-odd-if-match"), (b"If-Match", b"\xff")]
    status, answer = await raw_post(ingest_client, "/v1/images", payload, headers)
    assert status == 201, answer
    status, again = await raw_post(ingest_client, "/v1/images", payload, headers)
    assert (status, again["id"]) == (201, answer["id"])


async def test_a_batch_stopped_by_a_bad_field_answers_for_the_files_before_it(ingest_client, mongo_db):
    first, second = photo(), photo()
    payload = body(part("files", first, b"first.png"), part("bogus", b"x"), part("files", second, b"second.png"))
    status, problem = await raw_post(ingest_client, "/v1/images:batch", payload, [MULTIPART])
    assert status == 400 and problem["type"].endswith("/unknown-field"), problem
    first_id = hashlib.sha256(first).hexdigest()
    assert [(item["filename"], item["outcome"], item["id"]) for item in problem["items"]] == [("first.png", "created", first_id)]
    assert problem["counts"]["created"] == 1 and "see 'items'" in problem["detail"]
    assert await mongo_db[IMAGES].find_one({"_id": first_id}) is not None
    assert await mongo_db[IMAGES].find_one({"_id": hashlib.sha256(second).hexdigest()}) is None


async def test_files_over_the_cap_are_recorded_as_rejections_with_what_arrived(ingest_client, mongo_db):
    big = b"\x89PNG" + b"\x00" * (2 * 1024**2 + 10)  # the test service's cap is 2 MiB
    response = await ingest_client.post("/v1/images", data=_form("file", big, "huge-single.png"))
    assert response.status == 413
    single = await mongo_db[REJECTIONS].find_one({"filename": "huge-single.png"})
    assert single["reason"] == "too_large" and single["bytes"] > 2 * 1024**2

    response = await ingest_client.post("/v1/images:batch", data=_form("files", big, "huge-in-batch.png", dataset="over-cap"))
    assert response.status == 200
    in_batch = await mongo_db[REJECTIONS].find_one({"filename": "huge-in-batch.png"})
    assert (in_batch["reason"], in_batch["bytes"], in_batch["origin"]["dataset"]) == ("too_large", len(big), "over-cap")


def _form(field: str, data: bytes, filename: str, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field(field, data, filename=filename, content_type="application/octet-stream")
    return form


@pytest.mark.parametrize(
    "tags, why",
    [(",".join(f"t{i}" for i in range(201)), "201 tags"), ("ok," + "x" * 201, "201 characters")],
    ids=["too-many", "too-long"],
)
async def test_too_many_or_too_long_tags_refuse_the_image(ingest_client, tags, why):
    response = await ingest_client.post("/v1/images", data=_form("file", photo(), "tagged.png", tags=tags))
    problem = await response.json()
    assert (response.status, problem["reason"]) == (422, "invalid_tags"), problem
    assert why.split()[0] in problem["detail"].replace(",", "")


async def test_a_url_whose_host_does_not_decode_is_its_own_invalid_url_result(ingest_client):
    urls = ["http://127.0.0.1/x.jpg", "http://xn--/x.jpg", "http://a..b/x.jpg", "http://" + "a" * 70_000 + "/x.jpg"]
    response = await ingest_client.post("/v1/images:fetch", json={"urls": urls[:3]})
    answer = await response.json()
    assert response.status == 200, answer
    assert [item["reason"] for item in answer["items"]] == ["blocked_address", "invalid_url", "invalid_url"]
    response = await ingest_client.post("/v1/images:fetch", json={"urls": urls[3:]})
    assert response.status == 200 and (await response.json())["items"][0]["reason"] == "invalid_url"


@pytest.mark.parametrize(
    "raw",
    [b"[" * 3000, b'["9999-12-31T23:59:59.999999-23:59","x"]', b'["0001-01-01T00:00:00+23:59","x"]', b"[1, 2]", b'{"a": 1}'],
    ids=["deep", "past-9999", "before-1", "numbers", "object"],
)
async def test_a_crafted_rejections_cursor_is_a_400(ingest_client, raw):
    cursor = base64.urlsafe_b64encode(raw).decode()
    response = await ingest_client.get("/v1/rejections", params={"cursor": cursor})
    assert response.status == 400, await response.text()
