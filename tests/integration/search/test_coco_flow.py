"""The issue's acceptance path on the COCO sample: images and annotation summaries written to
MongoDB as ingest and annotation write them, events published, and the search mirror then
agrees with MongoDB on labels and facet counts, finds a re-encoded resized copy by similarity,
and comes back whole from a lost index through reindex, with zero drift after."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from PIL import Image

from shared.naming import normalize_name
from shared.readmodels import ANNOTATION_SUMMARIES
from tests.conftest import RUN_ID, eventually
from tests.integration.search.helpers import (
    all_ids, image_document, ingested, publish, run_job, search_json, write_images, write_summary,
)
from tests.photos import require_coco

SOURCE = f"coco-{RUN_ID}"


@pytest.fixture(scope="module")
def coco():
    root = require_coco()
    instances = json.loads((root / "annotations" / "instances.json").read_text())
    categories = {c["id"]: normalize_name(c["name"]) for c in instances["categories"]}
    per_image: dict[int, tuple[Counter, Counter]] = {}
    for ann in instances["annotations"]:
        labels, types = per_image.setdefault(ann["image_id"], (Counter(), Counter()))
        labels[categories[ann["category_id"]]] += 1
        types["mask" if ann["iscrowd"] else "polygon"] += 1
    images = []
    for n, entry in enumerate(instances["images"]):
        data = (root / "images" / entry["file_name"]).read_bytes()
        doc = image_document(data, entry["file_name"], source=SOURCE, tags=["coco"], offset=n, dataset="coco128")
        images.append((doc, data, *per_image.get(entry["id"], (Counter(), Counter()))))
    return images


@pytest.fixture(scope="module")
async def imported(coco, search_client, base_settings):
    """Write the read models, publish the events, wait until the mirror shows every image and every image's labels."""
    from shared.bus import Bus
    from shared.clients.mongo import database, mongo_client

    client = mongo_client(base_settings)
    db = database(client, base_settings)
    bus = Bus(base_settings.model_copy(update={"service_name": "search-tests"}))
    await bus.connect()
    try:
        await write_images(db, [doc for doc, *_ in coco])
        await publish(bus, *(ingested(doc) for doc, *_ in coco))
        for doc, _, labels, types in coco:
            if labels:
                await write_summary(db, doc["_id"], dict(labels), dict(types), version=1)
        from shared.events import AnnotationCreated
        from shared.events.envelope import utcnow

        await publish(bus, *(
            AnnotationCreated(annotation_id=f"a-{doc['_id'][:8]}", image_id=doc["_id"], version=1, type="polygon",
                              label=next(iter(labels)), changed_by="test", changed_at=utcnow())
            for doc, _, labels, _ in coco if labels
        ))
        annotated = sum(1 for *_, labels, _ in coco if labels)

        async def mirrored():  # every image, the two without annotations too: the tests count them all
            every = await search_json(search_client, sources=SOURCE, limit="1")
            page = await search_json(search_client, sources=SOURCE, has_annotations="true", limit="1")
            return every["total"] == len(coco) and page["total"] == annotated

        await eventually(mirrored, timeout=60)
        yield db
    finally:
        await bus.close()
        await client.close()


async def test_searching_a_label_finds_exactly_what_mongodb_says(imported, coco, search_client):
    ours = {"_id": {"$in": [doc["_id"] for doc, *_ in coco]}}  # other tests of the session write summaries too
    expected = {doc["_id"] async for doc in imported[ANNOTATION_SUMMARIES].find({**ours, "labels.person": {"$gt": 0}})}
    assert len(expected) > 20
    assert await all_ids(search_client, labels="person", sources=SOURCE) == expected
    assert await all_ids(search_client, q="person", sources=SOURCE) == expected
    # any / all / none
    both = {doc["_id"] async for doc in imported[ANNOTATION_SUMMARIES].find({**ours, "labels.person": {"$gt": 0}, "labels.dog": {"$gt": 0}})}
    assert await all_ids(search_client, labels_all="person,Dog", sources=SOURCE) == both
    without = await all_ids(search_client, labels_none="person", sources=SOURCE)
    assert without and not (without & expected)


async def test_facet_counts_match_mongodb(imported, coco, search_client):
    page = await search_json(search_client, sources=SOURCE, facets="labels,formats,resolution,sources", limit="1")
    assert page["total"] == len(coco)
    carrying = Counter(label for *_, labels, _ in coco for label in labels)
    assert page["facets"]["labels"], page
    for bucket in page["facets"]["labels"]:
        assert bucket["count"] == carrying[bucket["value"]], bucket
    assert page["facets"]["labels"][0] == {"value": "person", "count": carrying["person"]}
    assert page["facets"]["formats"] == [{"value": "jpeg", "count": len(coco)}]
    assert page["facets"]["sources"] == [{"value": SOURCE, "count": len(coco)}]
    assert sum(b["count"] for b in page["facets"]["resolution"]) == len(coco)


async def test_disjunctive_facet_counts_see_past_their_own_filter_only(imported, coco, search_client):
    """A multi-select list: with dog and cat chosen, the labels facet still counts every label (what choosing
    one more would add), while the resolution facet counts within the dogs and cats, like the hits."""
    chosen = [(doc, labels) for doc, _, labels, _ in coco if labels["dog"] or labels["cat"]]
    page = await search_json(search_client, sources=SOURCE, labels="dog,cat", facets="labels,resolution", facet_counts="disjunctive", limit="100")
    assert page["total"] == len(chosen) and {item["image_id"] for item in page["items"]} == {doc["_id"] for doc, _ in chosen}
    carrying = Counter(label for *_, labels, _ in coco for label in labels)
    _top_counts(page["facets"]["labels"], carrying)
    assert sum(b["count"] for b in page["facets"]["resolution"]) == len(chosen)
    # Counted within the results (the default), the labels facet sees only the dogs' and cats' labels.
    within = await search_json(search_client, sources=SOURCE, labels="dog,cat", facets="labels", limit="1")
    only = Counter(label for _, labels in chosen for label in labels)
    _top_counts(within["facets"]["labels"], only)
    assert only["person"] < carrying["person"]


def _top_counts(buckets: list[dict], expected: Counter) -> None:
    """The buckets are the most frequent values with their exact counts (ties at the cut in either order)."""
    assert len(buckets) == min(20, len(expected)) and all(b["count"] == expected[b["value"]] for b in buckets), buckets
    assert [b["count"] for b in buckets] == sorted(expected.values(), reverse=True)[: len(buckets)]


async def test_a_reencoded_resized_copy_is_found_by_similarity(imported, coco, search_client):
    doc, data, labels, _ = next(item for item in coco if item[2]["person"])
    with Image.open(io.BytesIO(data)) as image:
        smaller = image.convert("RGB").resize((image.width * 2 // 3, image.height * 2 // 3), Image.LANCZOS)
    buf = io.BytesIO()
    smaller.save(buf, "JPEG", quality=70)
    response = await search_client.post("/v1/search/similar", data=buf.getvalue(), headers={"Content-Type": "image/jpeg"}, params={"radius": "8"})
    assert response.status == 200, await response.text()
    found = await response.json()
    assert found["items"][0]["image_id"] == doc["_id"]
    assert found["items"][0]["distance"] <= 8
    by_id = await (await search_client.get(f"/v1/images/{doc['_id']}/similar", params={"k": "3"})).json()
    assert len(by_id["items"]) == 3 and doc["_id"] not in {i["image_id"] for i in by_id["items"]}
    assert [i["distance"] for i in by_id["items"]] == sorted(i["distance"] for i in by_id["items"])


async def test_lost_index_is_restored_by_reindex_with_zero_drift_after(imported, search_client, es, base_settings):
    alias = f"{base_settings.es_index_prefix}-images"
    before = await all_ids(search_client, labels="person", sources=SOURCE)
    behind = list((await es.indices.get_alias(name=alias)).body)
    await es.indices.delete(index=",".join(behind))
    lost = await search_client.get("/v1/search", params={"sources": SOURCE})
    assert lost.status == 503 and "reindex" in (await lost.json())["detail"]

    result = await run_job(search_client, "/v1/admin/reindex")
    assert result["indexed"] >= len(before)
    assert await all_ids(search_client, labels="person", sources=SOURCE) == before
    assert list((await es.indices.get_alias(name=alias)).body) == [result["index"]]
    report = await run_job(search_client, "/v1/admin/reconcile", repair="false")
    assert report["drift"] == 0, report
