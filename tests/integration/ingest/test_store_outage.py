"""MinIO cut off from ingest (behind a real TCP forwarder): uploads get 503 with Retry-After, nothing is
half-stored or recorded as the images' fault, and the same batch goes through once MinIO is back."""

from __future__ import annotations

import gc
import hashlib

import pytest

from services.ingest.adapters.repository import IMAGES, REJECTIONS
from tests.integration.ingest.test_batch_upload import batch_form
from tests.photos import skimage_photo, unique_png
from tests.uploads import image_form

pytestmark = pytest.mark.integration


async def test_uploads_while_minio_is_unreachable_get_503_and_leave_nothing_behind(make_ingest, minio_proxy, mongo_db, caplog):
    client = await make_ingest(own_exchange=True, minio_endpoint=minio_proxy.address, consume_submissions=False)
    photos = [("cut-a.png", unique_png(skimage_photo("coffee.png"))), ("cut-b.png", unique_png(skimage_photo("chelsea.png")))]
    shas = [hashlib.sha256(data).hexdigest() for _, data in photos]
    await minio_proxy.cut()
    try:
        for response in (
            await client.post("/v1/images:batch", data=batch_form(photos)),
            await client.post("/v1/images", data=image_form(photos[0][1], "cut-a.png")),
        ):
            assert response.status == 503, await response.text()
            assert int(response.headers["Retry-After"]) > 0
            problem = await response.json()
            assert problem["type"].endswith("store-unavailable") and problem["store"] == "MinIO"
        assert await mongo_db[IMAGES].count_documents({"_id": {"$in": shas}}) == 0
        assert await mongo_db[REJECTIONS].count_documents({"filename": {"$in": ["cut-a.png", "cut-b.png"]}}) == 0
        gc.collect()  # a future whose exception nobody took says so when it is collected
        assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    finally:
        await minio_proxy.restore()
    again = await client.post("/v1/images:batch", data=batch_form(photos))
    assert again.status == 200
    assert [item["status"] for item in (await again.json())["items"]] == [201, 201]
