"""The annotation API against the real stack: validation, versions, ETags, history, revert, as_of, events."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from shared.outbox import OUTBOX
from tests.conftest import eventually
from tests.integration.annotation.conftest import summary_once

pytestmark = pytest.mark.integration

BOX = {"type": "bbox", "label": "  Traffic_Light ", "bbox": [10, 20, 30, 40]}


async def create(client, image_id, **fields):
    response = await client.post("/v1/annotations", json={"image_id": image_id, **BOX, **fields})
    assert response.status == 201, await response.text()
    return await response.json()


async def test_create_normalises_the_label_and_starts_at_version_1(annotation_client, image_id, mongo_db):
    response = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, "score": 0.9})
    assert response.status == 201
    body = await response.json()
    assert response.headers["ETag"] == '"1"'
    assert body["label"] == "traffic light"
    assert body["version"] == 1 and body["created_by"] == "admin" and body["area"] == 1200
    # The summary follows from the drain, which moves the pending change of the write.
    await summary_once(mongo_db, image_id, labels={"traffic light": 1}, types={"bbox": 1}, count=1)
    # A second spelling resolves to the same label instead of a twin.
    again = await create(annotation_client, image_id, label="TRAFFIC-LIGHT")
    assert again["label_id"] == body["label_id"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"bbox": [600, 10, 50, 10]}, "outside_image"),
        ({"bbox": [10, 10, 0, 5]}, "degenerate"),
        ({"bbox": [10, 10, 5]}, "bbox_shape"),
        ({"type": "polygon", "bbox": None, "polygon": [[1, 1, 5, 5]]}, "degenerate"),
        ({"type": "polygon", "bbox": None, "polygon": [[1, 1, 5, 5, 9, 9]]}, "degenerate"),
        ({"type": "polygon", "bbox": None, "polygon": [[1, 1, 5, 5, 9]]}, "polygon_shape"),
        ({"type": "polygon", "bbox": None, "polygon": [[1, 1, 700, 5, 9, 90]]}, "outside_image"),
        ({"type": "mask", "bbox": None, "rle": {"size": [100, 100], "counts": "PPYo1"}}, "rle_size_mismatch"),
        ({"type": "mask", "bbox": None, "rle": {"size": [480, 640], "counts": [5, 10]}}, "rle_counts"),
        ({"type": "mask", "bbox": None, "rle": {"size": [480, 640], "counts": [480 * 640]}}, "degenerate"),
        ({"type": "keypoints", "bbox": None, "keypoints": [[10, 10, 3]]}, "keypoints_visibility"),
        ({"type": "keypoints", "bbox": None, "keypoints": [[10, 10, 0]]}, "degenerate"),
        ({"type": "classification"}, "unexpected_geometry"),
        ({"label": " _- "}, "label_name"),
        ({"image_id": "no-such-image"}, "unknown_image"),
    ],
)
async def test_invalid_annotations_get_422_with_a_reason(annotation_client, image_id, fields, reason):
    response = await annotation_client.post("/v1/annotations", json={"image_id": image_id, **BOX, **fields})
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["reason"] == reason and body["detail"]


async def test_every_type_is_accepted(annotation_client, image_id):
    mask = np.zeros((480, 640), dtype=np.uint8, order="F")
    mask[100:150, 200:260] = 1
    rle = coco_mask.encode(mask)
    rle = {"size": rle["size"], "counts": rle["counts"].decode()}
    polygon = await create(annotation_client, image_id, type="polygon", bbox=None, polygon=[[0, 0, 10, 0, 10, 10, 0, 10, 0, 0]])
    assert polygon["polygon"] == [[0, 0, 10, 0, 10, 10, 0, 10]] and polygon["bbox"] == [0, 0, 10, 10] and polygon["area"] == 100
    masked = await create(annotation_client, image_id, type="mask", bbox=None, rle=rle)
    assert masked["area"] == 50 * 60 and masked["bbox"] == [200, 100, 60, 50]
    points = await create(annotation_client, image_id, type="keypoints", bbox=None, keypoints=[[5, 5, 2], [0, 0, 0]])
    assert points["keypoints"][0] == [5, 5, 2]
    whole = await create(annotation_client, image_id, type="classification", bbox=None, label="Indoor")
    assert whole["label"] == "indoor" and whole["bbox"] is None


async def test_update_needs_the_current_version_and_keeps_history(annotation_client, image_id):
    created = await create(annotation_client, image_id)
    url = f"/v1/annotations/{created['id']}"
    missing = await annotation_client.patch(url, json={"score": 0.5})
    assert missing.status == 428
    updated = await annotation_client.patch(url, json={"bbox": [1, 2, 3, 4], "label": "car"}, headers={"If-Match": '"1"'})
    assert updated.status == 200 and updated.headers["ETag"] == '"2"'
    body = await updated.json()
    assert body["label"] == "car" and body["bbox"] == [1, 2, 3, 4] and body["area"] == 12
    stale = await annotation_client.patch(url, json={"score": 0.1}, headers={"If-Match": '"1"'})
    assert stale.status == 412
    problem = await stale.json()
    assert problem["current"]["version"] == 2 and problem["current"]["bbox"] == [1, 2, 3, 4]
    assert stale.headers["ETag"] == '"2"'
    history = await (await annotation_client.get(f"{url}/history")).json()
    assert [h["version"] for h in history["items"]] == [1, 2]
    second = history["items"][1]
    assert second["action"] == "updated" and second["changed_by"] == "admin"
    assert second["changes"]["bbox"] == {"from": [10, 20, 30, 40], "to": [1, 2, 3, 4]}
    assert set(second["changes"]) == {"bbox", "area", "label_id"}
    assert history["items"][0]["state"]["bbox"] == [10, 20, 30, 40]


async def test_delete_revert_and_as_of(annotation_client, image_id):
    created = await create(annotation_client, image_id)
    url = f"/v1/annotations/{created['id']}"
    await asyncio.sleep(0.01)
    moved = await (await annotation_client.patch(url, json={"bbox": [5, 5, 5, 5]}, headers={"If-Match": '"1"'})).json()
    await asyncio.sleep(0.01)
    deleted = await annotation_client.delete(url, headers={"If-Match": '"2"'})
    assert deleted.status == 200 and (await deleted.json())["deleted"] is True
    listing = await (await annotation_client.get(f"/v1/images/{image_id}/annotations")).json()
    assert created["id"] not in [a["id"] for a in listing["items"]]

    async def as_of(when: str) -> list[dict]:
        response = await annotation_client.get(f"/v1/images/{image_id}/annotations", params={"as_of": when})
        assert response.status == 200
        return [a for a in (await response.json())["items"] if a["id"] == created["id"]]

    [then] = await as_of(created["updated_at"])
    assert then["bbox"] == [10, 20, 30, 40] and then["version"] == 1
    [later] = await as_of(moved["updated_at"])
    assert later["bbox"] == [5, 5, 5, 5]
    assert await as_of((await deleted.json())["updated_at"]) == []
    assert await as_of("2000-01-01T00:00:00Z") == []

    revert = await annotation_client.post(f"{url}/revert", json={"version": 1}, headers={"If-Match": '"3"'})
    assert revert.status == 200
    back = await revert.json()
    assert back["version"] == 4 and back["deleted"] is False and back["bbox"] == [10, 20, 30, 40]
    history = await (await annotation_client.get(f"{url}/history")).json()
    assert [h["action"] for h in history["items"]] == ["created", "updated", "deleted", "reverted"]
    assert history["items"][3]["reverted_to"] == 1


async def test_changes_are_published_through_the_outbox(annotation_client, image_id, mongo_db):
    created = await create(annotation_client, image_id)

    async def sent():
        entry = await mongo_db[OUTBOX].find_one({"envelope.data.annotation_id": created["id"]})
        return entry if entry and entry["status"] == "sent" else None

    entry = await eventually(sent)
    assert entry["type"] == "annotation.created" and entry["envelope"]["data"]["label"] == "traffic light"


async def test_bulk_returns_one_result_per_item(annotation_client, image_id, mongo_db):
    items = [{"image_id": image_id, "type": "bbox", "label": f"thing {i % 7}", "bbox": [i % 600, 1, 5, 5]} for i in range(2000)]
    items[17]["bbox"] = [0, 0, 0, 0]
    items[1500]["image_id"] = "missing"
    response = await annotation_client.post("/v1/annotations/bulk", json={"items": items})
    assert response.status == 200
    body = await response.json()
    assert body["created"] == 1998 and body["failed"] == 2
    assert body["results"][17]["reason"] == "degenerate" and body["results"][1500]["reason"] == "unknown_image"
    assert all(r["status"] == 201 for i, r in enumerate(body["results"]) if i not in (17, 1500))
    summary = await summary_once(mongo_db, image_id, count=1998)
    assert sum(summary["labels"].values()) == 1998


async def test_unknown_annotation_is_404(annotation_client):
    response = await annotation_client.get("/v1/annotations/nope")
    assert response.status == 404 and (await response.json())["detail"]


async def test_bulk_update_applies_each_change_against_its_own_version(annotation_client, image_id):
    items = [{"image_id": image_id, "type": "bbox", "label": "bulk edit", "bbox": [i, 1, 5, 5]} for i in range(4)]
    created = await (await annotation_client.post("/v1/annotations/bulk", json={"items": items})).json()
    ids = [r["id"] for r in created["results"]]
    changes = [
        {"id": ids[0], "version": 1, "patch": {"score": 0.7}},
        {"id": ids[1], "version": 1, "delete": True},
        {"id": ids[2], "version": 5, "patch": {"score": 0.1}},  # stale
        {"id": ids[3], "version": 1, "patch": {"bbox": [0, 0, 0, 0]}},  # invalid
        {"id": "missing", "version": 1, "patch": {"score": 0.2}},
    ]
    response = await annotation_client.post("/v1/annotations/bulk-update", json={"items": changes})
    body = await response.json()
    assert [r["status"] for r in body["results"]] == [200, 200, 412, 422, 404]
    assert body["results"][3]["reason"] == "degenerate" and body["updated"] == 2
    assert (await (await annotation_client.get(f"/v1/annotations/{ids[0]}")).json())["score"] == 0.7
    assert (await (await annotation_client.get(f"/v1/annotations/{ids[2]}")).json())["version"] == 1


async def test_summary_keeps_label_names_with_dots_and_drops_zero_counts(annotation_client, image_id, mongo_db):
    dotted = await create(annotation_client, image_id, label="St. Bernard")
    plain = await create(annotation_client, image_id, label="collie")
    await annotation_client.patch(f"/v1/annotations/{plain['id']}", json={"label": "$pecial"}, headers={"If-Match": '"1"'})
    first = await summary_once(mongo_db, image_id, labels={"st. bernard": 1, "$pecial": 1}, count=2)
    await annotation_client.delete(f"/v1/annotations/{dotted['id']}", headers={"If-Match": '"1"'})
    second = await summary_once(mongo_db, image_id, labels={"$pecial": 1}, types={"bbox": 1}, count=1)
    assert second["version"] > first["version"]


async def test_oversized_bulk_is_413(annotation_client, image_id):
    from services.annotation.deps import ANNOTATION_SETTINGS

    limit = annotation_client.app[ANNOTATION_SETTINGS].bulk_max_items
    items = [{"image_id": image_id, "type": "classification", "label": "x"}] * (limit + 1)
    response = await annotation_client.post("/v1/annotations/bulk", json={"items": items})
    assert response.status == 413 and "split" in (await response.json())["detail"]
