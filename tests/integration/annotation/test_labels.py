"""The taxonomy: one normalisation rule on every way in, aliases, rename, merge, parents, external ids."""

from __future__ import annotations

import uuid

import pytest

from shared.outbox import OUTBOX
from tests.integration.annotation.conftest import summary_once

pytestmark = pytest.mark.integration


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:6]}"


async def label(client, name: str, **fields) -> dict:
    response = await client.post("/v1/labels", json={"name": name, **fields})
    assert response.status in (200, 201), await response.text()
    return await response.json()


async def test_a_name_that_normalises_onto_a_label_resolves_to_it(annotation_client):
    base = unique("Hair_Drier")
    created = await annotation_client.post("/v1/labels", json={"name": base, "external_ids": {"coco": "89"}})
    assert created.status == 201
    body = await created.json()
    assert body["name"] == base.lower().replace("_", " ")
    twin = await annotation_client.post("/v1/labels", json={"name": f"  {base.upper().replace('_', '-')}  "})
    assert twin.status == 200 and (await twin.json())["id"] == body["id"]
    resolved = await annotation_client.get("/v1/labels/resolve", params={"name": base.replace("_", "   ")})
    assert (await resolved.json())["id"] == body["id"]
    assert (await annotation_client.get("/v1/labels/resolve", params={"name": "nothing like it"})).status == 404


async def test_alias_rename_describe_and_parent(annotation_client):
    animal = await label(annotation_client, unique("animal"))
    cat = await label(annotation_client, unique("cat"), parent=animal["name"])
    assert cat["parent_id"] == animal["id"]
    aliased = await annotation_client.post(f"/v1/labels/{cat['id']}/aliases", json={"alias": f"Kitty {cat['id'][:4]}"})
    alias = f"kitty {cat['id'][:4]}"
    assert alias in (await aliased.json())["aliases"]
    assert (await (await annotation_client.get("/v1/labels/resolve", params={"name": alias.upper()})).json())["id"] == cat["id"]
    # An alias cannot be taken by another label.
    clash = await annotation_client.post(f"/v1/labels/{animal['id']}/aliases", json={"alias": alias})
    assert clash.status == 409
    renamed = await annotation_client.patch(
        f"/v1/labels/{cat['id']}", json={"name": f"Felis_{cat['id'][:4]}", "description": "small felines", "external_ids": {"wordnet": "n02121808"}}
    )
    body = await renamed.json()
    assert body["name"] == f"felis {cat['id'][:4]}" and body["description"] == "small felines"
    assert body["external_ids"] == {"wordnet": "n02121808"}
    cycle = await annotation_client.patch(f"/v1/labels/{animal['id']}", json={"parent_id": cat["id"]})
    assert cycle.status == 409


async def test_merge_moves_annotations_and_keeps_the_old_name_as_alias(annotation_client, image_id, mongo_db):
    old, new = unique("automobile"), unique("car")
    for name in (old, old, new):
        response = await annotation_client.post("/v1/annotations", json={"image_id": image_id, "type": "bbox", "label": name, "bbox": [1, 1, 4, 4]})
        assert response.status == 201
    source = await (await annotation_client.get("/v1/labels/resolve", params={"name": old})).json()
    target = await (await annotation_client.get("/v1/labels/resolve", params={"name": new})).json()
    merged = await annotation_client.post(f"/v1/labels/{source['id']}/merge", json={"into": target["id"]})
    assert merged.status == 200
    assert old in (await merged.json())["aliases"]
    listing = await (await annotation_client.get(f"/v1/images/{image_id}/annotations")).json()
    assert [a["label"] for a in listing["items"]].count(new) == 3
    # Using the old name now lands on the surviving label.
    again = await annotation_client.post("/v1/annotations", json={"image_id": image_id, "type": "bbox", "label": old, "bbox": [1, 1, 4, 4]})
    assert (await again.json())["label_id"] == target["id"]
    await summary_once(mongo_db, image_id, labels={new: 4})
    event = await mongo_db[OUTBOX].find_one({"type": "label.changed", "envelope.data.change": "merged", "envelope.data.label_id": source["id"]})
    assert event["envelope"]["data"]["merged_into"] == target["id"]
    again_merge = await annotation_client.post(f"/v1/labels/{source['id']}/merge", json={"into": target["id"]})
    assert again_merge.status == 409


async def test_label_changes_are_announced(annotation_client, mongo_db):
    created = await label(annotation_client, unique("boat"))
    await annotation_client.patch(f"/v1/labels/{created['id']}", json={"name": unique("ship")})
    changes = [e["envelope"]["data"]["change"] async for e in mongo_db[OUTBOX].find({"envelope.data.label_id": created["id"]}).sort("created_at")]
    assert changes == ["created", "renamed"]
