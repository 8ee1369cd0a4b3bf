"""The mirror kept current from events: ordered by external version, idempotent, labels re-projected;
drift repaired by reconcile; near-duplicate clusters, image detail and bad parameters over HTTP."""

from __future__ import annotations

import pytest

from shared.events import AnnotationDeleted, AnnotationUpdated, LabelChanged
from shared.events.envelope import utcnow
from shared.readmodels import ANNOTATION_SUMMARIES, IMAGES, AnnotationOut
from tests.conftest import RUN_ID, eventually
from tests.integration.search.helpers import (
    all_ids, image_document, ingested, publish, run_job, write_images, write_summary,
)
from tests.photos import skimage_photo

SOURCE = f"events-{RUN_ID}"


@pytest.fixture(scope="module")
def photos():
    names = ["astronaut.png", "camera.png", "rocket.jpg", "motorcycle_left.png"]
    return [image_document(skimage_photo(n), n, source=SOURCE, tags=["Skimage"], offset=n_) for n_, n in enumerate(names)]


async def doc_of(es, base_settings, image_id):
    got = await es.options(ignore_status=404).get(index=f"{base_settings.es_index_prefix}-images", id=image_id)
    return got.body if got.meta.status == 200 else None


def annotation_event(image_id: str, cls=AnnotationUpdated, **extra):
    return cls(annotation_id=f"a-{image_id[:6]}", image_id=image_id, version=2, type="bbox", label="x",
               changed_by="test", changed_at=utcnow(), **extra)


async def test_events_are_projected_in_version_order_and_idempotently(search_client, mongo_db, bus, es, base_settings, photos):
    astronaut, camera = photos[0], photos[1]
    await write_images(mongo_db, [astronaut, camera])
    await write_summary(mongo_db, astronaut["_id"], {"person": 1, "Space_Suit": 1}, {"bbox": 2}, version=3)
    await publish(bus, ingested(astronaut), ingested(camera))

    async def indexed():
        doc = await doc_of(es, base_settings, astronaut["_id"])
        return doc if doc and doc["_source"]["summary_version"] == 3 else None

    doc = await eventually(indexed)
    assert doc["_version"] == (1 << 32) | 3
    assert doc["_source"]["labels"] == ["person", "space suit"] and doc["_source"]["tags"] == ["skimage"]

    # The summary moves on (a label deleted); the event of that change re-projects it.
    await write_summary(mongo_db, astronaut["_id"], {"person": 1}, {"bbox": 1}, version=4)
    await publish(bus, annotation_event(astronaut["_id"], AnnotationDeleted))

    async def updated():
        doc = await doc_of(es, base_settings, astronaut["_id"])
        return doc if doc["_source"]["summary_version"] == 4 else None

    doc = await eventually(updated)
    assert doc["_source"]["labels"] == ["person"]
    # Replayed old events change nothing: the state comes from MongoDB and the version does not grow.
    await publish(bus, ingested(astronaut), annotation_event(astronaut["_id"]))
    # The replays change nothing to wait for: a change published behind them says they were taken.
    await write_summary(mongo_db, camera["_id"], {"replay marker": 1}, {"bbox": 1}, version=1)
    await publish(bus, annotation_event(camera["_id"]))

    async def marked():
        doc = await doc_of(es, base_settings, camera["_id"])
        return doc and doc["_source"]["labels"] == ["replay marker"]

    await eventually(marked)
    again = await doc_of(es, base_settings, astronaut["_id"])
    assert again["_version"] == doc["_version"] and again["_source"]["labels"] == ["person"]
    await es.indices.refresh(index=f"{base_settings.es_index_prefix}-images")
    assert await all_ids(search_client, sources=SOURCE, labels="space suit") == set()


async def test_label_rename_reprojects_the_images_carrying_it(search_client, mongo_db, bus, photos):
    rocket = photos[2]
    await write_images(mongo_db, [rocket])
    await write_summary(mongo_db, rocket["_id"], {"spaceship": 2}, {"polygon": 2}, version=1)
    await publish(bus, ingested(rocket))
    await eventually(lambda: all_ids(search_client, labels="spaceship", sources=SOURCE))
    # annotation renames the label and recomputes the summaries carrying it; the label event
    # (not an annotation event) is what tells search to re-project those images.
    await mongo_db[ANNOTATION_SUMMARIES].update_one({"_id": rocket["_id"]}, {"$set": {"labels": {"rocket ship": 2}}, "$inc": {"version": 1}})
    await publish(bus, LabelChanged(label_id="l1", name="Rocket Ship", previous_name="spaceship", change="renamed", changed_by="t", changed_at=utcnow()))

    async def renamed():
        return await all_ids(search_client, labels="rocket_ship", sources=SOURCE) == {rocket["_id"]}

    await eventually(renamed)
    assert await all_ids(search_client, labels="spaceship", sources=SOURCE) == set()


async def test_reconcile_reports_and_repairs_drift(own_search, own_db, es, photos):
    """On stores of its own: the session's other tests leave dozens of images unindexed in the shared ones
    (more than the 20 ids a report names), and its services write on while the drift is counted."""
    client, settings = own_search
    bike = photos[3]
    alias = f"{settings.es_index_prefix}-images"
    await write_images(own_db, [bike])  # in MongoDB, never announced: missing from the index
    await es.index(index=alias, id="f" * 64, document={"image_id": "f" * 64, "version": 1}, version=1, version_type="external", refresh=True)
    report = await run_job(client, "/v1/admin/reconcile", repair="false")
    assert (report["missing"], report["extra"], report["drift"]) == (1, 1, 2), report
    assert report["samples"] == {"missing": [bike["_id"]], "extra": ["f" * 64]}
    assert report["repaired"] == 0
    repaired = await run_job(client, "/v1/admin/reconcile")
    assert repaired["repaired"] == repaired["drift"] == 2, repaired
    await es.indices.refresh(index=alias)
    after = await run_job(client, "/v1/admin/reconcile", repair="false")
    assert after["drift"] == 0, after
    assert await doc_of(es, settings, "f" * 64) is None
    assert await all_ids(client, sources=SOURCE) == {bike["_id"]}


async def test_near_duplicate_clusters_and_status_filter(search_client, mongo_db, bus, photos):
    original = image_document(skimage_photo("chelsea.png"), "chelsea.png", source=SOURCE, tags=[])
    copy = image_document(skimage_photo("coffee.png"), "coffee.png", source=SOURCE, tags=[], near_duplicate_of=original["_id"])
    await write_images(mongo_db, [original, copy])
    await publish(bus, ingested(original), ingested(copy))
    await eventually(lambda: all_ids(search_client, sources=SOURCE, near_duplicate="true"))
    assert await all_ids(search_client, sources=SOURCE, near_duplicate="true") == {copy["_id"]}

    clusters, cursor = [], None
    while True:
        page = await (await search_client.get("/v1/near-duplicates", params={"cursor": cursor} if cursor else {})).json()
        clusters += page["items"]
        if not (cursor := page["next"]):
            break
    assert {"original": original["_id"], "duplicates": [copy["_id"]], "size": 2} in clusters


async def test_image_detail_carries_labels_annotations_and_urls(search_client, mongo_db, photos):
    astronaut = photos[0]
    label_id, now = f"l-person-{RUN_ID}", utcnow()
    await mongo_db["labels"].insert_one({"_id": label_id, "name": "person"})
    # As the annotation service stores it: with the changes its drain has not yet moved out.
    await mongo_db["annotations"].insert_one({
        "_id": f"ann-{RUN_ID}", "image_id": astronaut["_id"], "deleted": False, "type": "bbox", "bbox": [1, 2, 3, 4],
        "label_id": label_id, "version": 1, "created_at": now, "created_by": "u", "updated_at": now, "updated_by": "u",
        "pending": [{"history": {"version": 1}}], "pending_n": 1,
    })  # fmt: skip
    detail = await (await search_client.get(f"/v1/images/{astronaut['_id']}")).json()
    assert detail["labels"] == {"person": 1} and detail["annotation_count"] == 1
    [annotation] = detail["annotations"]
    assert (annotation["id"], annotation["label"], annotation["label_id"]) == (f"ann-{RUN_ID}", "person", label_id)
    assert set(annotation) == set(AnnotationOut.model_fields)  # the annotation API's shape: no pending, pending_n
    assert detail["original_url"].startswith("http") and detail["thumbnail_url"] is None
    assert await mongo_db[IMAGES].count_documents({"_id": astronaut["_id"]}) == 1


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"min_width": "500", "max_width": "100"}, 400, "inverted"),
        ({"limit": "101"}, 400, "between 1 and 100"),
        ({"colour": "red"}, 400, "Unknown parameter(s) colour"),
        ({"cursor": "garbage"}, 400, "cursor"),
        ({"facets": "moods"}, 400, "Unknown facet"),
    ],
)
async def test_bad_parameters_are_problem_details(search_client, params, status, fragment):
    response = await search_client.get("/v1/search", params=params)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert fragment in (await response.json())["detail"]


async def test_similar_errors(search_client):
    assert (await search_client.get(f"/v1/images/{'0' * 64}/similar")).status == 404
    bad = await search_client.post("/v1/search/similar", data=b"not an image", headers={"Content-Type": "image/png"})
    assert bad.status == 422 and "not a decodable image" in (await bad.json())["detail"]
    assert (await search_client.get(f"/v1/images/{'0' * 64}/similar", params={"radius": "99"})).status == 400
