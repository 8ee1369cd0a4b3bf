"""Keypoint schemas on labels, end to end: set through the API, brought by a COCO person_keypoints import
(read by ingest's own COCO reader), enforced on annotations, and written back by the COCO export."""

from __future__ import annotations

import io
import json
import shutil
import uuid
import zipfile

import pytest

from services.annotation.adapters.store import ANNOTATIONS, IMPORT_ERRORS, LABELS
from services.ingest.domain.datasets import read_dataset
from shared.clients.blobs import original_key
from shared.events import AnnotationsImported
from tests.conftest import eventually
from tests.integration.annotation import coco_events
from tests.integration.annotation.conftest import add_image
from tests.integration.annotation.test_coco_import_export import publish
from tests.photos import require_coco, unique_png

pytestmark = pytest.mark.integration

NAMES = ["head", "left_hand", "right_hand"]


async def test_a_label_schema_is_set_checked_and_enforced_on_its_annotations(annotation_client, mongo_db):
    tag = uuid.uuid4().hex[:6]
    image_id = await add_image(mongo_db, 451, 300)
    created = await annotation_client.post("/v1/labels", json={"name": f"Walker {tag}", "keypoints": NAMES, "skeleton": [[1, 2], [1, 3]]})
    assert created.status == 201, await created.text()
    label = await created.json()
    assert (label["name"], label["keypoints"], label["skeleton"]) == (f"walker {tag}", NAMES, [[1, 2], [1, 3]])
    bad = await annotation_client.post("/v1/labels", json={"name": f"other {tag}", "keypoints": NAMES, "skeleton": [[1, 4]]})
    assert bad.status == 422 and "from 1 to 3" in await bad.text()
    same = await annotation_client.post("/v1/labels", json={"name": f"walker {tag}", "keypoints": NAMES, "skeleton": [[1, 2], [1, 3]]})
    assert same.status == 200  # the label it names, with that schema already
    other = await annotation_client.post("/v1/labels", json={"name": f"walker {tag}", "keypoints": ["head", "tail"]})
    assert other.status == 409 and "another keypoint schema" in (await other.json())["detail"]  # not silently kept as it was

    points = [[20, 30, 2], [10, 60, 1], [0, 0, 0]]
    box = await annotation_client.post(
        "/v1/annotations", json={"image_id": image_id, "type": "bbox", "label": f"walker {tag}", "bbox": [5, 5, 50, 80], "keypoints": points}
    )
    assert box.status == 201, await box.text()
    body = await box.json()
    assert body["keypoints"] == points and body["bbox"] == [5, 5, 50, 80]  # one object: a box and its points
    short = await annotation_client.post(
        "/v1/annotations", json={"image_id": image_id, "type": "keypoints", "label": f"walker {tag}", "keypoints": points[:2]}
    )
    assert short.status == 422 and (await short.json())["reason"] == "keypoints_count"
    patched = await annotation_client.patch(
        f"/v1/annotations/{body['id']}", json={"keypoints": points[:2]}, headers={"If-Match": str(body["version"])}
    )
    assert patched.status == 422 and (await patched.json())["reason"] == "keypoints_count"

    # The skeleton alone changes against the names the label has; null names remove the schema.
    edges = await annotation_client.patch(f"/v1/labels/{label['id']}", json={"skeleton": [[2, 3]]})
    assert edges.status == 200 and (await edges.json())["skeleton"] == [[2, 3]]
    loop = await annotation_client.patch(f"/v1/labels/{label['id']}", json={"skeleton": [[3, 3]]})
    assert loop.status == 422 and (await loop.json())["reason"] == "keypoint_schema"
    cleared = await annotation_client.patch(f"/v1/labels/{label['id']}", json={"keypoints": None})
    assert cleared.status == 200 and (await cleared.json())["keypoints"] is None
    free = await annotation_client.post(
        "/v1/annotations", json={"image_id": image_id, "type": "keypoints", "label": f"walker {tag}", "keypoints": points[:2]}
    )
    assert free.status == 201, await free.text()  # without a schema, any number of points


def _person_keypoints_file(coco, root, tag: str) -> dict:
    """COCO's own people on three sample photos, as a person_keypoints file: the points are the first
    vertices of each person's outline (the sample has no keypoints), the third one not labelled."""
    data = coco_events.load(coco)
    person = next(c["id"] for c in data["categories"] if c["name"] == "person")
    people = [a for a in data["annotations"] if a["category_id"] == person and not a["iscrowd"]]
    chosen = sorted({a["image_id"] for a in people})[:3]
    annotations = []
    for a in (a for a in people if a["image_id"] in chosen):
        ring = a["segmentation"][0]
        points = [ring[0], ring[1], 2, ring[2], ring[3], 1, 0, 0, 0]
        annotations.append({**a, "category_id": 7, "keypoints": points, "num_keypoints": 2})
    wrong = {**annotations[0], "id": 10**9, "keypoints": annotations[0]["keypoints"][:6]}  # two points for a three-point schema
    images = [i for i in data["images"] if i["id"] in chosen]
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    for image in images:
        shutil.copy(coco / "images" / image["file_name"], root / "images" / image["file_name"])
    category = {"id": 7, "name": f"Person {tag}", "supercategory": "", "keypoints": NAMES, "skeleton": [[1, 2], [1, 3]]}
    doc = {"images": images, "annotations": [*annotations, wrong], "categories": [category]}
    (root / "annotations" / "person_keypoints.json").write_text(json.dumps(doc))
    return doc


async def test_a_person_keypoints_import_keeps_points_and_schema_and_the_coco_export_gives_them_back(
    annotation_client, names, mongo_db, blob_store, tmp_path
):
    coco = require_coco()
    tag = uuid.uuid4().hex[:6]
    source = _person_keypoints_file(coco, tmp_path, tag)
    dataset = read_dataset("coco", tmp_path / "annotations" / "person_keypoints.json", f"keypoints-{tag}")
    events, image_ids = [], []
    for item in dataset.items:
        data = unique_png(item.path.read_bytes())  # pixels and size as the sample's; an id of this test's own
        image = next(i for i in source["images"] if i["file_name"] == item.path.name)
        image_id = await add_image(mongo_db, image["width"], image["height"], data=data, filename=item.path.name)
        await blob_store.put(original_key(image_id), data, "image/png")
        image_ids.append(image_id)
        events.append(AnnotationsImported(
            import_id=f"kp-{tag}", dataset=dataset.name, image_id=image_id, image_width=image["width"], image_height=image["height"],
            categories=dataset.categories_for(item.annotations), annotations=list(item.annotations),
        ))  # fmt: skip
    await publish(names, events)
    expected = len(source["annotations"]) - 1

    async def all_there():
        return await mongo_db[ANNOTATIONS].count_documents({"dataset": dataset.name}) == expected

    await eventually(all_there, timeout=60)
    [error] = await eventually(lambda: mongo_db[IMPORT_ERRORS].find({"dataset": dataset.name}).to_list())
    assert error["reason"] == "keypoints_count" and error["source_id"] == str(10**9)  # recorded, not lost, the rest kept
    label = await mongo_db[LABELS].find_one({"name": f"person {tag}"})
    assert (label["keypoints"], label["skeleton"]) == (NAMES, [[1, 2], [1, 3]])

    response = await annotation_client.post("/v1/exports", json={"format": "coco", "image_ids": image_ids, "id_scheme": dataset.name})
    assert response.status == 200, await response.text()
    exported = json.loads(zipfile.ZipFile(io.BytesIO(await response.read())).read("annotations/instances.json"))
    assert exported["categories"] == [{"id": 7, "name": f"person {tag}", "supercategory": "", "keypoints": NAMES, "skeleton": [[1, 2], [1, 3]]}]
    before = {tuple(a["bbox"]): (a["keypoints"], a["num_keypoints"], a["segmentation"]) for a in source["annotations"][:-1]}
    after = {tuple(a["bbox"]): (a["keypoints"], a["num_keypoints"], a["segmentation"]) for a in exported["annotations"]}
    assert after == before  # every person with its outline and its points, as one COCO object each
