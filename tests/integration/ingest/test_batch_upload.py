"""Batch upload: good photos and the bad-input corpus in one request; one result per file."""

import hashlib
import io

import aiohttp
from PIL import Image

from services.ingest.adapters.repository import IMAGES, REJECTIONS, SOURCES
from shared.clients.blobs import original_key, thumbnail_key
from shared.outbox import OUTBOX
from tests.photos import skimage_photo
from tests.unit.ingest.bad_inputs import bad_inputs, wrong_extension
from tests.unit.ingest.test_exif_and_derivatives import photo_with_exif
from tests.uploads import image_form


def good_photos() -> list[tuple[str, bytes]]:
    # Photos no other test module stores (the integration session shares one database).
    return [(name, skimage_photo(name)) for name in ("brick.png", "color.png", "hubble_deep_field.jpg", "logo.png", "horse.png")]


def batch_form(files: list[tuple[str, bytes]], **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    for name, data in files:
        form.add_field("files", data, filename=name, content_type="application/octet-stream")
    return form


async def test_bad_inputs_mixed_into_good_ones_each_get_their_own_result(ingest_client, mongo_db, blob_store):
    good = good_photos() + [wrong_extension()]
    bad = bad_inputs()
    files = []
    for i in range(max(len(good), len(bad))):  # interleaved: every bad file has good neighbours
        if i < len(good):
            files.append(("good", *good[i]))
        if i < len(bad):
            files.append(("bad", bad[i][0], bad[i][1], bad[i][2]))
    form = batch_form([(f[1], f[2]) for f in files], tags="batch-test", source="corpus test")
    response = await ingest_client.post("/v1/images:batch", data=form)
    assert response.status == 200, await response.text()
    body = await response.json()
    items = body["items"]
    assert [item["index"] for item in items] == list(range(len(files)))

    for spec, item in zip(files, items, strict=True):
        assert item["filename"] == spec[1]
        if spec[0] == "good":
            sha = hashlib.sha256(spec[2]).hexdigest()
            assert item["status"] in (200, 201), item
            assert item["id"] == sha
            doc = await mongo_db[IMAGES].find_one({"_id": sha})
            assert doc is not None and doc["thumbnail"] is True
            assert await blob_store.get(original_key(sha)) == spec[2]
            thumb = Image.open(io.BytesIO(await blob_store.get(thumbnail_key(sha))))
            assert thumb.format == "JPEG" and max(thumb.size) <= 256
        else:
            assert (item["status"], item["outcome"], item["reason"]) == (422, "rejected", spec[3]), item
            assert item["detail"]
            assert await mongo_db[REJECTIONS].find_one({"filename": spec[1], "reason": spec[3]})
    assert body["counts"]["rejected"] == len(bad)

    wrong_name, wrong_data = wrong_extension()
    stored = await mongo_db[IMAGES].find_one({"_id": hashlib.sha256(wrong_data).hexdigest()})
    assert stored["format"] == "PNG"

    # The worker pool survived all of it: a plain upload still works.
    after = await ingest_client.post("/v1/images", data=image_form(skimage_photo("phantom.png"), "phantom.png"))
    assert after.status in (200, 201)


async def test_file_over_the_cap_fails_alone(ingest_client):
    form = batch_form([("big.jpg", b"\xff" * (2 * 1024**2 + 10)), ("ok.png", skimage_photo("horse.png"))])
    body = await (await ingest_client.post("/v1/images:batch", data=form)).json()
    assert body["items"][0]["status"] == 413 and body["items"][0]["reason"] == "too_large"
    assert body["items"][1]["status"] in (200, 201)


async def test_idempotency_key_replays_the_first_answer(ingest_client, mongo_db):
    data = skimage_photo("grass.png")
    headers = {"Idempotency-Key": "batch-key-1"}
    first = await ingest_client.post("/v1/images:batch", data=batch_form([("grass.png", data)]), headers=headers)
    assert first.status == 200
    replay = await ingest_client.post("/v1/images:batch", data=batch_form([("grass.png", data)]), headers=headers)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert await replay.json() == await first.json()
    assert (await first.json())["items"][0]["status"] == 201  # the replay says 201 too: it is the first answer
    sha = hashlib.sha256(data).hexdigest()
    assert await mongo_db[OUTBOX].count_documents({"type": "image.ingested", "envelope.data.image_id": sha}) == 1
    single = await ingest_client.post("/v1/images", data=image_form(b"", "empty-idem.jpg"), headers={"Idempotency-Key": "single-1"})
    again = await ingest_client.post("/v1/images", data=image_form(b"", "empty-idem.jpg"), headers={"Idempotency-Key": "single-1"})
    assert single.status == again.status == 422
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await mongo_db[REJECTIONS].count_documents({"filename": "empty-idem.jpg", "reason": "empty"}) == 1


async def test_exif_and_provenance_reach_the_document_and_the_event(ingest_client, mongo_db):
    data = photo_with_exif()
    form = image_form(data, "canon.jpg", source="https://example.org/canon.jpg")
    response = await ingest_client.post("/v1/images", data=form)
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["exif"]["camera_make"] == "Canon" and body["exif"]["gps"] == {"lat": -33.86, "lon": 151.21}
    assert body["origin"]["kind"] == "upload" and body["uploader"]
    event = await mongo_db[OUTBOX].find_one({"type": "image.ingested", "envelope.data.image_id": body["id"]})
    data_ = event["envelope"]["data"]
    assert (data_["camera_model"], data_["lens"], data_["thumbnail"], data_["source_kind"]) == (
        "Canon EOS 5D Mark IV", "EF50mm f/1.8 STM", True, "upload"
    )
    assert data_["captured_at"].startswith("2021-05-06T07:08:09")
    assert "gps" not in str(data_)
    assert await mongo_db[SOURCES].count_documents({"image_id": body["id"]}) == 1


async def test_near_duplicate_is_linked_to_its_original(ingest_client):
    image = Image.open(io.BytesIO(skimage_photo("ihc.png"))).convert("RGB")
    copies = []
    for quality in (96, 75):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality)
        copies.append(buf.getvalue())
    first = await (await ingest_client.post("/v1/images", data=image_form(copies[0], "ihc-96.jpg"))).json()
    second = await (await ingest_client.post("/v1/images", data=image_form(copies[1], "ihc-75.jpg"))).json()
    assert second["id"] != first["id"]
    assert second["near_duplicate_of"] == first["id"]
    assert second["near_duplicate_distance"] <= 4


async def test_near_duplicate_policy_reject(make_ingest):
    client = await make_ingest(near_duplicate_policy="reject", consume_submissions=False)
    image = Image.open(io.BytesIO(skimage_photo("gravel.png"))).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    await client.post("/v1/images", data=image_form(skimage_photo("gravel.png"), "gravel.png"))
    response = await client.post("/v1/images", data=image_form(buf.getvalue(), "gravel-80.jpg"))
    assert response.status == 422
    problem = await response.json()
    assert problem["reason"] == "near_duplicate"
    assert hashlib.sha256(skimage_photo("gravel.png")).hexdigest() in problem["detail"]


async def test_rejections_are_listed_with_cursor_and_filters(ingest_client):
    for i in range(3):
        await ingest_client.post("/v1/images", data=image_form(f"text number {i}".encode() * 20, f"list-{i}.jpg"))
    page = await (await ingest_client.get("/v1/rejections", params={"reason": "not_an_image", "limit": "2"})).json()
    assert len(page["items"]) == 2 and page["next"]
    assert all(item["reason"] == "not_an_image" and item["message"] for item in page["items"])
    rest = await (await ingest_client.get("/v1/rejections", params={"reason": "not_an_image", "limit": "2", "cursor": page["next"]})).json()
    seen = {i["id"] for i in page["items"]}
    assert rest["items"] and not seen & {i["id"] for i in rest["items"]}
    names = [i["filename"] for i in page["items"] + rest["items"]]
    assert {"list-0.jpg", "list-1.jpg", "list-2.jpg"} <= set(names)
    bad = await ingest_client.get("/v1/rejections", params={"cursor": "nonsense"})
    assert bad.status == 400 and "cursor" in (await bad.json())["detail"]


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def test_a_group_sees_itself_same_bytes_are_one_image_and_near_copies_link_to_the_first(ingest_client, mongo_db):
    # A mirrored real photo (no other test stores it), the same bytes again, and a copy with a few pixels nudged.
    mirrored = Image.open(io.BytesIO(skimage_photo("coins.png"))).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    original = _png(mirrored)
    nudged = mirrored.copy()
    for x in range(40, 44):
        nudged.putpixel((x, 50), 255)
    variant = _png(nudged)
    form = batch_form([("coins-a.png", original), ("coins-b.png", original), ("coins-c.png", variant)], source="group test")
    response = await ingest_client.post("/v1/images:batch", data=form)
    assert response.status == 200, await response.text()
    first, again, near = (await response.json())["items"]
    original_id = hashlib.sha256(original).hexdigest()
    assert (first["outcome"], first["id"]) == ("created", original_id)
    assert (again["outcome"], again["status"], again["id"]) == ("duplicate", 200, original_id)
    assert near["outcome"] == "created" and near["id"] == hashlib.sha256(variant).hexdigest()
    assert near["near_duplicate_of"] == original_id
    assert await mongo_db[IMAGES].count_documents({"_id": {"$in": [original_id, near["id"]]}}) == 2
    # One event per stored image, staged in the group's transaction.
    assert await mongo_db[OUTBOX].count_documents({"envelope.data.image_id": {"$in": [original_id, near["id"]]}}) == 2
    assert await mongo_db[SOURCES].count_documents({"image_id": original_id}) == 1
