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


def _boxes_event(dataset: str, image_id: str, source_ids: list[str], import_id: str = "job-3") -> AnnotationsImported:
    return AnnotationsImported(
        import_id=import_id, dataset=dataset, image_id=image_id, image_width=640, image_height=480,
        categories=[ImportedCategory(name="zebra", external_id="24")],
        annotations=[ImportedAnnotation(source_id=s, type="bbox", label="zebra", bbox=[10, 10, 50, 80]) for s in source_ids],
    )  # fmt: skip


async def test_two_imports_under_one_dataset_name_keep_both_images_annotations(mongo_db):
    """a/train and b/train (or COCO's train and val files, whose annotation ids both start at 1) share the
    dataset name and the source ids: each image keeps its own annotations, and a redelivery adds nothing."""
    first, second = await add_image(mongo_db, 640, 480), await add_image(mongo_db, 640, 480)
    dataset = f"train-{uuid.uuid4().hex[:6]}"
    handle = handlers(service_layer(mongo_db))[AnnotationsImported.event_type]
    for image_id in (first, second, first, second):  # the last two: redelivered
        event = _boxes_event(dataset, image_id, ["1", "2"])
        await handle(Envelope.wrap(event, producer="ingest"), event)
    made = await mongo_db[ANNOTATIONS].find({"dataset": dataset}).to_list()
    assert sorted((a["image_id"], a["source_id"]) for a in made) == sorted(
        [(first, "1"), (first, "2"), (second, "1"), (second, "2")]
    )


async def test_refusals_of_two_images_with_the_same_source_id_are_both_recorded(mongo_db):
    first, second = await add_image(mongo_db, 640, 480), await add_image(mongo_db, 640, 480)
    dataset = f"val-{uuid.uuid4().hex[:6]}"
    handle = handlers(service_layer(mongo_db))[AnnotationsImported.event_type]
    for image_id in (first, second):
        event = AnnotationsImported(
            import_id="job-4", dataset=dataset, image_id=image_id, image_width=640, image_height=480, categories=[],
            annotations=[ImportedAnnotation(source_id="7", type="bbox", label="zebra", bbox=[700, 10, 50, 80])],
        )  # fmt: skip
        await handle(Envelope.wrap(event, producer="ingest"), event)
    errors = await mongo_db["annotation_import_errors"].find({"dataset": dataset}).to_list()
    assert sorted(e["image_id"] for e in errors) == sorted([first, second])


async def test_start_up_replaces_the_import_key_without_the_image_even_when_two_instances_start_together(base_settings):
    """An install made before the key had the image has a unique (dataset, source_id) index that would refuse
    the second import's annotations: start-up builds (dataset, image_id, source_id) and drops the old one."""
    import asyncio

    from pymongo import ASCENDING

    from services.annotation.adapters.store import ensure_indexes
    from shared.clients.mongo import mongo_client

    client = mongo_client(base_settings)
    db = client[f"{base_settings.mongo_db}_keys_{uuid.uuid4().hex[:6]}"]
    try:
        await db[ANNOTATIONS].create_index(
            [("dataset", ASCENDING), ("source_id", ASCENDING)], unique=True, partialFilterExpression={"source_id": {"$type": "string"}}
        )
        await asyncio.gather(ensure_indexes(db), ensure_indexes(db))
        indexes = await db[ANNOTATIONS].index_information()
        assert "dataset_1_source_id_1" not in indexes
        assert indexes["dataset_1_image_id_1_source_id_1"]["unique"]
        await db[ANNOTATIONS].insert_many([
            {"_id": "a", "dataset": "train", "image_id": "one", "source_id": "1"},
            {"_id": "b", "dataset": "train", "image_id": "two", "source_id": "1"},
        ])  # fmt: skip
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_an_export_by_dataset_leaves_out_other_imports_of_its_images(mongo_db, annotation_client, blob_store):
    """Exported and imported back under another name, the images carry both imports' boxes: an export by the
    first dataset has its own and those drawn by hand, not the copy (which doubled the boxes each round)."""
    import io
    import json
    import zipfile

    from shared.clients.blobs import original_key
    from tests.photos import skimage_photo, unique_png

    photo = unique_png(skimage_photo("coffee.png"))
    image_id = await add_image(mongo_db, 600, 400, data=photo)
    await blob_store.put(original_key(image_id), photo, "image/png")
    original, copy = f"round-{uuid.uuid4().hex[:6]}", f"round-copy-{uuid.uuid4().hex[:6]}"
    handle = handlers(service_layer(mongo_db))[AnnotationsImported.event_type]
    for dataset in (original, copy):
        event = _boxes_event(dataset, image_id, ["1", "2"])
        await handle(Envelope.wrap(event, producer="ingest"), event)
    drawn = await annotation_client.post("/v1/annotations", json={"image_id": image_id, "type": "bbox", "label": "zebra", "bbox": [1, 1, 5, 5]})
    assert drawn.status == 201, await drawn.text()

    async def exported(selection: dict) -> int:
        response = await annotation_client.post("/v1/exports", json={"format": "coco", **selection})
        assert response.status == 200, await response.text()
        return len(json.loads(zipfile.ZipFile(io.BytesIO(await response.read())).read("annotations/instances.json"))["annotations"])

    assert await exported({"dataset": original}) == 3
    assert await exported({"dataset": copy}) == 3
    assert await exported({"image_ids": [image_id]}) == 5


async def refused_import(mongo_db, import_id: str, dataset: str) -> list[str]:
    """An import whose three annotations (two on one image, one on another) lie outside their images."""
    images = [await add_image(mongo_db, 640, 480), await add_image(mongo_db, 640, 480)]
    handle = handlers(service_layer(mongo_db))[AnnotationsImported.event_type]
    for image_id, source_ids in zip(images, (["1", "2"], ["1"]), strict=True):
        event = AnnotationsImported(
            import_id=import_id, dataset=dataset, image_id=image_id, image_width=640, image_height=480, categories=[],
            annotations=[ImportedAnnotation(source_id=s, type="bbox", label="zebra", bbox=[700, 10, 50, 80]) for s in source_ids],
        )  # fmt: skip
        await handle(Envelope.wrap(event, producer="ingest"), event)
    return images


async def test_an_imports_refused_annotations_are_listed_page_by_page(mongo_db, annotation_client):
    import_id, dataset = f"job-{uuid.uuid4().hex[:8]}", f"refused-{uuid.uuid4().hex[:6]}"
    images = await refused_import(mongo_db, import_id, dataset)
    first = await annotation_client.get("/v1/import-errors", params={"import_id": import_id, "limit": "2"})
    assert first.status == 200, await first.text()
    page = await first.json()
    second = await (await annotation_client.get("/v1/import-errors", params={"import_id": import_id, "cursor": page["next"]})).json()
    items = page["items"] + second["items"]
    assert second["next"] is None and len(page["items"]) == 2
    assert sorted((i["image_id"], i["source_id"]) for i in items) == sorted([(images[0], "1"), (images[0], "2"), (images[1], "1")])
    assert {(i["reason"], i["dataset"], i["import_id"]) for i in items} == {("outside_image", dataset, import_id)}
    assert all(i["detail"] and i["recorded_at"] for i in items)
    by_dataset = await (await annotation_client.get("/v1/import-errors", params={"dataset": dataset})).json()
    assert len(by_dataset["items"]) == 3
    other = await (await annotation_client.get("/v1/import-errors", params={"import_id": import_id, "dataset": "another"})).json()
    assert other["items"] == []
    bad = await annotation_client.get("/v1/import-errors", params={"import_id": import_id, "cursor": "not-one"})
    assert bad.status == 400
