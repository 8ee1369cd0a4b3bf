"""The ``imagefolder`` export: each image under a folder per class it has, as torchvision's ImageFolder reads it."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from PIL import Image

from shared.clients.blobs import original_key
from tests.integration.annotation.conftest import add_image
from tests.photos import skimage_photo, unique_png

pytestmark = pytest.mark.integration


async def _stored(mongo_db, blob_store, photo: str) -> tuple[str, bytes]:
    """A sample photo stored as ingest would, with bytes (and an id) of its own (``unique_png``)."""
    data = unique_png(skimage_photo(photo))
    image = Image.open(io.BytesIO(data))
    image_id = await add_image(mongo_db, *image.size, data=data, filename=photo.replace(".jpg", ".png"))
    await blob_store.put(original_key(image_id), data, "image/png")
    return image_id, data


async def _annotate(client, image_id: str, **fields) -> None:
    response = await client.post("/v1/annotations", json={"image_id": image_id, **fields})
    assert response.status == 201, await response.text()


async def test_each_image_lands_in_the_folder_of_every_class_it_has(annotation_client, mongo_db, blob_store):
    cat, cat_bytes = await _stored(mongo_db, blob_store, "chelsea.png")
    coffee, coffee_bytes = await _stored(mongo_db, blob_store, "coffee.png")
    boxed, _ = await _stored(mongo_db, blob_store, "rocket.jpg")
    await _annotate(annotation_client, cat, type="classification", label="Cat")
    await _annotate(annotation_client, cat, type="classification", label="Indoor_Scene")
    await _annotate(annotation_client, cat, type="bbox", label="whiskers", bbox=[10, 10, 20, 20])  # not a class
    await _annotate(annotation_client, coffee, type="classification", label="drink/hot")
    await _annotate(annotation_client, boxed, type="bbox", label="rocket", bbox=[10, 10, 20, 20])

    response = await annotation_client.post("/v1/exports", json={"format": "imagefolder", "image_ids": [cat, coffee, boxed]})
    assert response.status == 200, await response.text()
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    photos = {name for name in archive.namelist() if name.endswith((".png", ".jpg"))}
    assert photos == {"cat/chelsea.png", "indoor scene/chelsea.png", "drink%2Fhot/coffee.png"}
    assert archive.read("cat/chelsea.png") == archive.read("indoor scene/chelsea.png") == cat_bytes
    assert archive.read("drink%2Fhot/coffee.png") == coffee_bytes
    # ImageFolder numbers the folders in sorted order; classes.txt lists them in that order.
    assert archive.read("classes.txt").decode().splitlines() == ["cat", "drink%2Fhot", "indoor scene"]
    rows = list(csv.reader(io.StringIO(archive.read("labels.csv").decode())))
    assert rows[0] == ["path", "class"]
    assert sorted(rows[1:]) == [["cat/chelsea.png", "cat"], ["drink%2Fhot/coffee.png", "drink/hot"], ["indoor scene/chelsea.png", "indoor scene"]]
    assert archive.read("unclassified.txt").decode() == "rocket.png\n"


async def test_a_selection_without_classes_is_refused_with_a_reason(annotation_client, mongo_db, blob_store):
    boxed, _ = await _stored(mongo_db, blob_store, "camera.png")
    await _annotate(annotation_client, boxed, type="bbox", label="camera", bbox=[5, 5, 10, 10])
    response = await annotation_client.post("/v1/exports", json={"format": "imagefolder", "image_ids": [boxed]})
    assert response.status == 422
    body = await response.json()
    assert body["reason"] == "no_classifications" and "classification" in body["detail"]
