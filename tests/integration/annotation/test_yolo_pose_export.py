"""The ``yolo-pose`` export end to end: a label with a keypoint schema and its annotations made through the
API, exported, and read back by ingest's own YOLO reader (the inverse); two schemas in one selection refused."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
import yaml
from PIL import Image

from services.ingest.domain.datasets import fitted, in_pixels, read_dataset
from shared.clients.blobs import original_key
from tests.integration.annotation.conftest import add_image
from tests.integration.annotation.test_cli import corpus
from tests.photos import skimage_photo, unique_png

pytestmark = pytest.mark.integration

NAMES = ["head", "left_hand", "right_hand"]


async def _stored(mongo_db, blob_store, photo: str) -> tuple[str, int, int]:
    data = unique_png(skimage_photo(photo))
    width, height = Image.open(io.BytesIO(data)).size
    image_id = await add_image(mongo_db, width, height, data=data, filename=photo)
    await blob_store.put(original_key(image_id), data, "image/png")
    return image_id, width, height


async def _created(client, path: str, **body) -> dict:
    response = await client.post(path, json=body)
    assert response.status in (200, 201), await response.text()
    return await response.json()


def _same_points(read: list[list[float]], made: list[list[float]]) -> None:
    """The same points within rounding (6 decimals of the image, then ingest's 2 of a pixel), the same visibility."""
    assert [p[2] for p in read] == [p[2] for p in made]
    assert [c for p in read for c in p[:2]] == pytest.approx([c for p in made for c in p[:2]], abs=0.01)


async def test_a_pose_export_reads_back_as_the_same_boxes_points_and_visibility(annotation_client, mongo_db, blob_store, tmp_path):
    tag = uuid.uuid4().hex[:6]
    image_id, width, height = await _stored(mongo_db, blob_store, "chelsea.png")
    label = await _created(annotation_client, "/v1/labels", name=f"Walker {tag}", keypoints=NAMES, skeleton=[[1, 2], [1, 3]])
    made = [
        await _created(annotation_client, "/v1/annotations", image_id=image_id, type="bbox", label=label["name"],
                       bbox=[10.5, 20.25, 200, 150], keypoints=[[60.3, 40.7, 2], [15.125, 160.9, 1], [0, 0, 0]]),
        await _created(annotation_client, "/v1/annotations", image_id=image_id, type="keypoints", label=label["name"],
                       keypoints=[[300.33, 100.5, 2], [0, 0, 0], [420.75, 290.1, 1]]),  # boxed by its points' extent
        await _created(annotation_client, "/v1/annotations", image_id=image_id, type="polygon", label=label["name"],
                       polygon=[[250, 10, 400, 10, 400, 90, 250, 90]]),  # no points: every point 0 0 0
    ]  # fmt: skip

    response = await annotation_client.post("/v1/exports", json={"format": "yolo-pose", "image_ids": [image_id]})
    assert response.status == 200, await response.text()
    zipfile.ZipFile(io.BytesIO(await response.read())).extractall(tmp_path)
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data["kpt_shape"] == [3, 3] and data["flip_idx"] == [0, 2, 1] and data["names"] == {0: label["name"]}
    assert (tmp_path / "images" / "chelsea.png").is_file()

    dataset = read_dataset("yolo", tmp_path, f"pose-{tag}")
    assert dataset.warnings == [] and [item.source_id for item in dataset.items] == ["images/chelsea.png"]
    read = [fitted(in_pixels(a, width, height), width, height)[0] for a in dataset.items[0].annotations]
    assert [a.label for a in read] == [label["name"]] * 3 and {a.type for a in read} == {"bbox"}
    boxed, shape, points_only = sorted(read, key=lambda a: a.bbox[0])  # the export's order is the store's, not ours
    assert boxed.bbox == pytest.approx(made[0]["bbox"], abs=0.01)
    _same_points(boxed.keypoints, made[0]["keypoints"])
    labelled = [p for p in made[1]["keypoints"] if p[2] > 0]
    xs, ys = [p[0] for p in labelled], [p[1] for p in labelled]
    assert points_only.bbox == pytest.approx([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], abs=0.01)
    _same_points(points_only.keypoints, made[1]["keypoints"])
    assert shape.bbox == pytest.approx(made[2]["bbox"], abs=0.01) and shape.keypoints is None


async def test_labels_with_different_schemas_are_refused_unless_classes_keeps_one(annotation_client, mongo_db, blob_store, tmp_path):
    tag = uuid.uuid4().hex[:6]
    image_id, _, _ = await _stored(mongo_db, blob_store, "coffee.png")
    walker = await _created(annotation_client, "/v1/labels", name=f"walker {tag}", keypoints=NAMES)
    crawler = await _created(annotation_client, "/v1/labels", name=f"crawler {tag}", keypoints=["head", "tail", "leg 1", "leg 2"])
    await _created(annotation_client, "/v1/annotations", image_id=image_id, type="bbox", label=walker["name"], bbox=[1, 1, 50, 50],
                   keypoints=[[5, 5, 2], [10, 10, 2], [20, 20, 1]])  # fmt: skip
    await _created(annotation_client, "/v1/annotations", image_id=image_id, type="keypoints", label=crawler["name"],
                   keypoints=[[5, 5, 2], [10, 10, 2], [20, 20, 1], [30, 30, 2]])  # fmt: skip

    response = await annotation_client.post("/v1/exports", json={"format": "yolo-pose", "image_ids": [image_id]})
    assert response.status == 422, await response.text()
    problem = await response.json()
    assert problem["reason"] == "keypoint_schemas_differ" and problem["labels"] == [crawler["name"], walker["name"]]
    assert f"'{crawler['name']}' (4 points)" in problem["detail"] and f"'{walker['name']}' (3 points)" in problem["detail"]

    out = tmp_path / "walkers.zip"
    await corpus(annotation_client, "export", "--format", "yolo-pose", "--image-id", image_id, "--classes", walker["name"], "--out", str(out))
    with zipfile.ZipFile(out) as archive:
        assert yaml.safe_load(archive.read("data.yaml"))["kpt_shape"] == [3, 3]
        [line] = archive.read("labels/coffee.txt").decode().splitlines()
        assert line.split()[0] == "0" and len(line.split()) == 1 + 4 + 3 * 3
