"""Ingest's HTTP API against the real stack."""

import asyncio
import hashlib
import io

from PIL import Image

from services.ingest.adapters.repository import IMAGES, REJECTIONS
from shared.clients.blobs import original_key
from shared.outbox import OUTBOX
from tests.photos import skimage_photo
from tests.uploads import image_form


async def test_upload_stores_blob_document_and_event_then_same_bytes_answer_200(ingest_client, mongo_db, blob_store):
    data = skimage_photo("astronaut.png")
    sha = hashlib.sha256(data).hexdigest()
    response = await ingest_client.post(
        "/v1/images", data=image_form(data, "astronaut.png", tags="Space, NASA ,space", source="skimage")
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["id"] == body["sha256"] == sha
    assert (body["width"], body["height"], body["format"], body["bytes"]) == (512, 512, "PNG", len(data))
    assert body["tags"] == ["space", "nasa"]
    assert body["source"] == "skimage"
    assert response.headers["Location"] == f"/v1/images/{sha}"

    assert await blob_store.get(original_key(sha)) == data
    stored = await mongo_db[IMAGES].find_one({"_id": sha})
    assert stored["created_at"] is not None and stored["version"] == 1
    event = await mongo_db[OUTBOX].find_one({"type": "image.ingested", "envelope.data.image_id": sha})
    assert event is not None

    again = await ingest_client.post("/v1/images", data=image_form(data, "copy.png"))
    assert again.status == 200
    assert (await again.json())["id"] == sha
    assert await mongo_db[IMAGES].count_documents({"_id": sha}) == 1
    assert await mongo_db[OUTBOX].count_documents({"envelope.data.image_id": sha}) == 1

    fetched = await ingest_client.get(f"/v1/images/{sha}")
    assert (await fetched.json())["filename"] == "astronaut.png"


async def test_bytes_that_are_not_an_image_answer_422_and_are_recorded(ingest_client, mongo_db):
    response = await ingest_client.post("/v1/images", data=image_form(b"just some text\n" * 20, "notes.jpg"))
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["reason"] == "not_an_image"
    assert problem["status"] == 422
    assert "JPEG, PNG" in problem["detail"]
    rejection = await mongo_db[REJECTIONS].find_one({"filename": "notes.jpg"})
    assert rejection["reason"] == "not_an_image"
    assert await mongo_db[OUTBOX].find_one({"type": "image.rejected", "envelope.data.filename": "notes.jpg"})


async def test_truncated_photo_is_refused_as_corrupt(ingest_client):
    data = skimage_photo("retina.jpg")
    response = await ingest_client.post("/v1/images", data=image_form(data[: len(data) // 3], "cut.jpg"))
    assert response.status == 422
    assert (await response.json())["reason"] == "corrupt"


async def test_upload_over_the_cap_answers_413(ingest_client):
    response = await ingest_client.post("/v1/images", data=image_form(b"\xff" * (2 * 1024**2 + 1), "big.jpg"))
    assert response.status == 413
    assert "2,097,152" in (await response.json())["detail"]


async def test_malformed_requests_answer_problem_details(ingest_client):
    no_file = await ingest_client.post("/v1/images", data={"tags": "x"})
    assert no_file.status in (400, 415)
    unknown = await ingest_client.post("/v1/images", data=image_form(b"x", colour="red"))
    assert unknown.status == 400
    assert "colour" in (await unknown.json())["detail"]
    json_body = await ingest_client.post("/v1/images", json={"file": "x"})
    assert json_body.status == 415
    missing = await ingest_client.get("/v1/images/" + "0" * 64)
    assert missing.status == 404
    assert (await missing.json())["title"] == "Not Found"
    wrong_method = await ingest_client.delete("/v1/images")
    assert wrong_method.status == 405
    assert wrong_method.content_type == "application/problem+json"
    # A checksum that is no SHA-256 is the request's fault, not a file that "changed on the way".
    bad_sum = await ingest_client.post("/v1/images", data=image_form(b"x", sha256="abc"))
    assert bad_sum.status == 400 and (await bad_sum.json())["type"].endswith("/bad-checksum")
    bad_sums = await ingest_client.post("/v1/images:fetch", json={"urls": ["https://example.org/a.jpg"], "sha256": ["abc"]})
    assert bad_sums.status == 422 and (await bad_sums.json())["errors"][0]["loc"] == ["sha256", 0]
    # JSON that is not JSON: the same 422 invalid-body, with its errors listed, as the annotation service answers.
    not_json = await ingest_client.post("/v1/imports", data=b"{kind: coco", headers={"Content-Type": "application/json"})
    problem = await not_json.json()
    assert not_json.status == 422 and problem["type"].endswith("/invalid-body") and problem["errors"], problem
    assert "errors.pydantic.dev" not in problem["detail"]


async def test_health_readiness_metrics_and_openapi(ingest_client):
    assert (await ingest_client.get("/healthz")).status == 200
    ready = await ingest_client.get("/readyz")
    body = await ready.json()
    assert ready.status == 200, body
    assert body["checks"] == {"mongodb": "ok", "minio": "ok", "rabbitmq": "ok"}
    metrics = await (await ingest_client.get("/metrics")).text()
    assert 'corpus_http_requests_total{method="GET",route="/healthz",service="ingest",status="200"}' in metrics
    spec = await (await ingest_client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "post" in spec["paths"]["/v1/images"]
    assert "ImageOut" in spec["components"]["schemas"]


async def test_correlation_id_is_echoed(ingest_client):
    response = await ingest_client.get("/healthz", headers={"X-Correlation-ID": "abc-123"})
    assert response.headers["X-Correlation-ID"] == "abc-123"


async def test_concurrent_single_uploads_share_groups_and_each_gets_its_own_answer(ingest_client, mongo_db):
    # Real photos turned a quarter (bytes and pictures no other test stores), one of them sent twice at once.
    photos = []
    for name in ("camera.png", "moon.png", "page.png", "coins.png", "text.png", "grass.png"):
        image = Image.open(io.BytesIO(skimage_photo(name))).transpose(Image.Transpose.ROTATE_90)
        out = io.BytesIO()
        image.save(out, "PNG")
        photos.append((name, out.getvalue()))
    sends = [*photos, photos[0]]
    responses = await asyncio.gather(
        *(ingest_client.post("/v1/images", data=image_form(data, f"quarter-{name}")) for name, data in sends)
    )
    statuses = [r.status for r in responses]
    bodies = [await r.json() for r in responses]
    for (name, data), body in zip(sends, bodies, strict=True):
        assert body["id"] == hashlib.sha256(data).hexdigest(), (name, body)
    # The same bytes twice at once: one stored it, the other was told it is already there.
    assert sorted([statuses[0], statuses[-1]]) == [200, 201]
    assert statuses[1:-1] == [201] * 5
    ids = [hashlib.sha256(data).hexdigest() for _, data in photos]
    assert await mongo_db[IMAGES].count_documents({"_id": {"$in": ids}}) == 6
    assert await mongo_db[OUTBOX].count_documents({"envelope.data.image_id": {"$in": ids}, "type": "image.ingested"}) == 6
