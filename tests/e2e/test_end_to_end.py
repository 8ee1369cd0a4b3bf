"""The three services as processes, driven over HTTP: one image from upload to search result,
and nothing lost while the search consumer is down."""

import hashlib

import aiohttp
import pytest

from tests.conftest import ADMIN, eventually
from tests.photos import coco_dir, skimage_photos
from tests.uploads import image_form

pytestmark = pytest.mark.e2e


def real_photos(count: int = 21) -> list[tuple[str, bytes]]:
    coco = coco_dir()
    if coco is not None:
        files = sorted((coco / "images").glob("*.jpg"))[:count]
    else:  # the scikit-image wheel's photos stand in where the COCO sample is absent
        files = [p for p in skimage_photos() if p.suffix != ".tif"][:count]
    assert len(files) == count
    return [(p.name, p.read_bytes()) for p in files]


async def search_ids(http, search_url, **params) -> list[str]:
    async with http.get(f"{search_url}/v1/search", params=params) as response:
        assert response.status == 200, await response.text()
        return [item["image_id"] for item in (await response.json())["items"]]


async def test_one_image_travels_from_upload_to_search_and_back(services):
    ingest, search = services["ingest"].url, services["search"].url
    name, data = real_photos()[20]  # not among the twenty below
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        async with http.post(f"{ingest}/v1/images", data=image_form(data, name, tags="e2e-first", source="coco")) as r:
            assert r.status == 201, await r.text()
            image_id = (await r.json())["id"]
        assert image_id == hashlib.sha256(data).hexdigest()

        async def found():
            return image_id in await search_ids(http, search, q="e2e first")

        await eventually(found)
        async with http.get(f"{search}/v1/images/{image_id}") as r:
            detail = await r.json()
        async with aiohttp.ClientSession() as plain, plain.get(detail["original_url"]) as r:
            assert await r.read() == data  # the presigned URL is the only credential it needs
        async with http.post(f"{ingest}/v1/images", data=image_form(data, name)) as r:
            assert r.status == 200
        async with http.post(f"{ingest}/v1/images", data=image_form(b"%PDF-1.4 not an image", "doc.png")) as r:
            assert r.status == 422
            assert (await r.json())["reason"] == "unsupported_format"
        async with http.get(f"{services['annotation'].url}/healthz") as r:
            assert r.status == 200


async def test_nothing_is_lost_while_search_is_down(services):
    ingest, search = services["ingest"], services["search"]
    assert search.stop() == 0  # a clean shutdown on SIGTERM
    photos = real_photos()[:20]
    uploaded = set()
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        for name, data in photos:
            async with http.post(f"{ingest.url}/v1/images", data=image_form(data, name, tags="while-down")) as r:
                assert r.status in (200, 201), await r.text()
                uploaded.add((await r.json())["id"])
        assert len(uploaded) == 20
        await search.start()

        async def all_searchable():
            return set(await search_ids(http, search.url, q="while down", limit="50")) == uploaded

        await eventually(all_searchable, timeout=60)
