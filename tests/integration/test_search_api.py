"""Upload through ingest, find through search: the event path in one process, against the real stack."""

import hashlib
import io

import aiohttp
from PIL import Image

from tests.conftest import eventually
from tests.photos import skimage_photo
from tests.uploads import image_form


async def _search(client, **params):
    response = await client.get("/v1/search", params=params)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_uploaded_image_becomes_searchable_and_fetchable(ingest_client, search_client):
    data = skimage_photo("coffee.png")
    upload = await ingest_client.post("/v1/images", data=image_form(data, "morning_coffee.png", tags="espresso,cup"))
    image_id = (await upload.json())["id"]

    async def found():
        page = await _search(search_client, q="espresso")
        return [item for item in page["items"] if item["image_id"] == image_id]

    (item,) = await eventually(found)
    assert item["tags"] == ["espresso", "cup"]
    assert item["format"] == "png"
    assert "text" not in item
    assert [i["image_id"] for i in (await _search(search_client, q="morning coffee"))["items"]] == [image_id]

    detail = await (await search_client.get(f"/v1/images/{image_id}")).json()
    assert detail["sha256"] == hashlib.sha256(data).hexdigest()
    async with aiohttp.ClientSession() as http, http.get(detail["original_url"]) as response:
        assert await response.read() == data


async def test_cursor_pages_through_every_result_once(ingest_client, search_client):
    base = Image.open(io.BytesIO(skimage_photo("chelsea.png"))).convert("RGB")
    ids = set()
    for n in range(5):
        buf = io.BytesIO()
        base.rotate(n * 7).save(buf, "JPEG", quality=90)
        response = await ingest_client.post("/v1/images", data=image_form(buf.getvalue(), f"cat{n}.jpg", tags="pager"))
        ids.add((await response.json())["id"])

    async def all_indexed():
        return (await _search(search_client, q="pager"))["total"] == 5

    await eventually(all_indexed)
    seen, cursor = [], None
    while True:
        params = {"q": "pager", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await _search(search_client, **params)
        assert page["total"] == 5
        seen += [item["image_id"] for item in page["items"]]
        cursor = page["next"]
        if not cursor:
            break
    assert len(seen) == 5 and set(seen) == ids


async def test_bad_search_parameters_are_400(search_client):
    response = await search_client.get("/v1/search", params={"limit": "1000"})
    assert response.status == 400
    assert (await response.json())["detail"].startswith("limit must be between")
    missing = await search_client.get("/v1/images/nope")
    assert missing.status == 404


async def test_every_service_is_ready_and_documents_itself(search_client, annotation_client):
    for client, checks in (
        (search_client, {"mongodb", "elasticsearch", "rabbitmq", "similarity"}),
        (annotation_client, {"mongodb", "rabbitmq"}),
    ):
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert checks <= set((await ready.json())["checks"])  # each service may add checks of its own
        spec = await (await client.get("/openapi.json")).json()
        assert spec["info"]["title"].startswith("Image Corpus")
    spec = await (await search_client.get("/openapi.json")).json()
    assert {"/v1/search", "/v1/images/{image_id}", "/v1/images/{image_id}/similar", "/v1/search/similar"} <= set(spec["paths"])
