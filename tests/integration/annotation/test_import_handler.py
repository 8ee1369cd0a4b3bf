"""The ``annotations.imported`` handler called directly, logging at INFO as deployed: it returns (so the
consumer acks the message, never parks it), creates each annotation once, and a redelivery creates nothing.

(Its log call once named a LogRecord attribute in ``extra``: at INFO every import event raised after doing
its work, and was retried and parked.)"""

import logging
import uuid

from services.annotation.adapters.store import ANNOTATIONS
from services.annotation.handlers import handlers
from shared.events import AnnotationsImported, Envelope, ImportedAnnotation, ImportedCategory
from tests.integration.annotation.conftest import add_image, service_layer


async def test_an_import_event_is_handled_once_and_redelivery_creates_nothing(mongo_db, caplog):
    image_id = await add_image(mongo_db, 640, 480)
    dataset = f"handler-{uuid.uuid4().hex[:6]}"
    event = AnnotationsImported(
        import_id="job-1", dataset=dataset, image_id=image_id, image_width=640, image_height=480,
        categories=[ImportedCategory(name="Traffic_Light", external_id="10", parent="outdoor")],
        annotations=[
            ImportedAnnotation(source_id="1", type="bbox", label="Traffic_Light", bbox=[10, 10, 50, 80]),
            ImportedAnnotation(source_id="2", type="bbox", label="Traffic_Light", bbox=[700, 10, 50, 80]),  # outside
        ],
    )  # fmt: skip
    handle = handlers(service_layer(mongo_db))[AnnotationsImported.event_type]
    envelope = Envelope.wrap(event, producer="ingest")
    with caplog.at_level(logging.INFO, logger="services.annotation.handlers"):
        await handle(envelope, event)
        await handle(envelope, event)  # redelivered
    made = await mongo_db[ANNOTATIONS].find({"dataset": dataset}).to_list()
    assert [(a["source_id"], a["bbox"]) for a in made] == [("1", [10.0, 10.0, 50.0, 80.0])]
    assert await mongo_db["annotation_import_errors"].count_documents({"dataset": dataset}) == 1
    logged = [r for r in caplog.records if r.getMessage() == "annotations imported"]
    # The refused one is checked again on redelivery (and its one error record replaced): nothing new is made.
    assert [(r.annotations_created, r.failed, r.already_there) for r in logged] == [(1, 1, 0), (0, 1, 1)]


async def test_a_dotted_dataset_name_keeps_its_category_ids_and_exports_find_them(mongo_db, annotation_client, blob_store):
    import io
    import json
    import zipfile

    from services.annotation.adapters.store import LABELS
    from shared.clients.blobs import original_key
    from tests.photos import skimage_photo, unique_png

    photo = unique_png(skimage_photo("coffee.png"))
    image_id = await add_image(mongo_db, 600, 400, data=photo)
    missing = await add_image(mongo_db, 640, 480)  # a document whose original is not in object storage
    dataset = f"coco.{uuid.uuid4().hex[:6]}"  # a dot: no MongoDB field name as it is
    name = f"dotted {uuid.uuid4().hex[:6]}"
    event = AnnotationsImported(
        import_id="job-2", dataset=dataset, image_id=image_id, image_width=600, image_height=400,
        categories=[ImportedCategory(name=name, external_id="77")],
        annotations=[ImportedAnnotation(source_id="1", type="bbox", label=name, bbox=[10, 10, 50, 80])],
    )  # fmt: skip
    await handlers(service_layer(mongo_db))[AnnotationsImported.event_type](Envelope.wrap(event, producer="ingest"), event)
    label = await mongo_db[LABELS].find_one({"name": name})
    assert label["external_ids"] == {dataset.replace(".", "_"): "77"}
    await blob_store.put(original_key(image_id), photo, "image/png")
    response = await annotation_client.post("/v1/exports", json={"format": "coco", "image_ids": [image_id], "id_scheme": dataset})
    assert response.status == 200, await response.text()
    coco = json.loads(zipfile.ZipFile(io.BytesIO(await response.read())).read("annotations/instances.json"))
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(77, name)]

    response = await annotation_client.post("/v1/exports", json={"format": "coco", "image_ids": [image_id, missing]})
    problem = await response.json()
    assert (response.status, problem["image_id"]) == (409, missing) and problem["type"].endswith("/original-missing"), problem
