"""CorpusDetection against the real services: what a training loop gets for a search selection.

The dataset is synchronous (as a DataLoader worker is), and the services of
this session answer on the test's event loop, so the dataset runs in a
thread or in other processes here.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import uuid
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from services.datasets.detection import CorpusDetection, CorpusRequestFailed
from tests.conftest import ADMIN_KEY
from tests.integration.ingest.test_batch_upload import batch_form
from tests.photos import skimage_photo, unique_png

pytestmark = [
    pytest.mark.integration,
    # pycocotools 2.0.11 under NumPy 2 (every decode; the masks are right): as in the export tests.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]


def _boxes(args: tuple[CorpusDetection, int]) -> list[list[float]]:
    """One sample's boxes, read in a worker process (the dataset crossed into it pickled, as DataLoader sends it)."""
    dataset, index = args
    return dataset[index][1]["boxes"].tolist()


@pytest.fixture(scope="module")
async def selection(ingest_client, annotation_client, search_client):
    tag = f"ds{uuid.uuid4().hex[:8]}"  # also the labels' prefix: a word, as label names are normalised
    photos = {name: unique_png(skimage_photo(name)) for name in ("coffee.png", "chelsea.png")}
    uploaded = await ingest_client.post("/v1/images:batch", data=batch_form(list(photos.items()), tags=tag))
    assert uploaded.status == 200, await uploaded.text()
    coffee, chelsea = (item["id"] for item in (await uploaded.json())["items"])
    # chelsea.png is 451 × 300: a mask drawn as an array, to compare with what comes back.
    drawn = np.zeros((300, 451), dtype=np.uint8)
    drawn[100:180, 200:330] = 1
    drawn[120:140, 240:260] = 0
    rle = coco_mask.encode(np.asfortranarray(drawn))
    items = [
        {"image_id": coffee, "type": "bbox", "label": f"{tag} cup", "bbox": [10, 20, 100, 50]},
        {"image_id": coffee, "type": "polygon", "label": f"{tag} saucer", "polygon": [[10, 10, 50, 10, 50, 40, 10, 40]]},
        {"image_id": chelsea, "type": "mask", "label": f"{tag} cat", "rle": {"size": rle["size"], "counts": rle["counts"].decode()}},
        {"image_id": chelsea, "type": "classification", "label": f"{tag} cat"},
    ]
    created = await annotation_client.post("/v1/annotations/bulk", json={"items": items})
    assert (await created.json())["created"] == 4, await created.text()

    async def searchable() -> bool:
        body = await (await search_client.get("/v1/search", params={"tags": tag})).json()
        return body["total"] == 2

    from tests.conftest import eventually

    await eventually(searchable)
    return {
        "tag": tag, "coffee": coffee, "chelsea": chelsea, "photos": photos, "drawn": drawn,
        "search": str(search_client.make_url("")), "annotation": str(annotation_client.make_url("")),
    }


def _dataset(selection, **options) -> CorpusDetection:
    return CorpusDetection(selection["search"], selection["annotation"], ADMIN_KEY, query={"tags": selection["tag"], "sort": "created_at"}, **options)


async def test_each_sample_is_the_stored_image_with_its_boxes_and_classes(selection, tmp_path):
    tag = selection["tag"]
    dataset = await asyncio.to_thread(_dataset, selection, masks=True, cache_dir=tmp_path)
    assert len(dataset) == 2 and set(dataset.ids) == {selection["coffee"], selection["chelsea"]}
    assert dataset.classes == sorted(dataset.classes) and {f"{tag} cup", f"{tag} saucer", f"{tag} cat"} <= set(dataset.classes)

    index = dataset.ids.index(selection["coffee"])
    image, target = await asyncio.to_thread(dataset.__getitem__, index)
    stored = Image.open(io.BytesIO(selection["photos"]["coffee.png"])).convert("RGB")
    assert image.mode == "RGB" and np.array_equal(np.asarray(image), np.asarray(stored))
    order = np.argsort(target["labels"])  # the service lists annotations in its own order
    by_class = {dataset.classes[label - 1]: (box, mask) for label, box, mask in zip(target["labels"][order], target["boxes"][order], target["masks"][order], strict=True)}
    assert set(by_class) == {f"{tag} cup", f"{tag} saucer"}
    cup_box, cup_mask = by_class[f"{tag} cup"]
    assert cup_box.tolist() == [10, 20, 110, 70]  # x, y, w, h → x1, y1, x2, y2
    assert cup_mask.sum() == 100 * 50  # a box's mask is its box
    saucer_box, saucer_mask = by_class[f"{tag} saucer"]
    assert saucer_box.tolist() == [10, 10, 50, 40]
    assert saucer_mask.shape == (stored.height, stored.width) and saucer_mask[25, 30] == 1 and saucer_mask[5, 5] == 0 and saucer_mask[25, 60] == 0
    assert target["boxes"].dtype == np.float32 and target["labels"].dtype == np.int64 and target["iscrowd"].tolist() == [0, 0]

    image, target = await asyncio.to_thread(dataset.__getitem__, dataset.ids.index(selection["chelsea"]))
    assert target["labels"].tolist() == [dataset.classes.index(f"{tag} cat") + 1]  # the classification has no box: left out
    assert target["labels"].min() >= 1 and dataset.num_classes == len(dataset.classes) + 1  # 0 is torchvision's background
    assert np.array_equal(target["masks"][0], selection["drawn"])
    assert target["iscrowd"].tolist() == [1]  # an RLE mask without a COCO flag of its own: crowd, as the COCO export writes it
    assert target["boxes"].tolist() == [[200, 100, 330, 180]]
    assert (tmp_path / selection["chelsea"][:2] / selection["chelsea"]).read_bytes() == selection["photos"]["chelsea.png"]


async def _alias(annotation_client, name: str, alias: str) -> None:
    label = await (await annotation_client.get("/v1/labels/resolve", params={"name": name})).json()
    added = await annotation_client.post(f"/v1/labels/{label['id']}/aliases", json={"alias": alias})
    assert added.status == 200, await added.text()


async def test_given_classes_choose_and_number_the_annotations_and_transforms_see_each_sample(selection, annotation_client):
    tag = selection["tag"]
    await _alias(annotation_client, f"{tag} cup", f"{tag} mug")
    seen = []

    def transforms(image, target):
        seen.append(target["image_id"])
        return image.size, target

    # Names as the corpus normalises them, and an alias: both stand for the label the annotations carry.
    dataset = await asyncio.to_thread(_dataset, selection, classes=[f"{tag.upper()}_Saucer", f"{tag} Mug"], transforms=transforms)
    assert dataset.classes == [f"{tag} saucer", f"{tag} cup"] and dataset.num_classes == 3
    size, target = await asyncio.to_thread(dataset.__getitem__, dataset.ids.index(selection["coffee"]))
    assert size == Image.open(io.BytesIO(selection["photos"]["coffee.png"])).size
    by_label = dict(zip(target["labels"].tolist(), target["boxes"].tolist(), strict=True))
    assert by_label == {1: [10, 10, 50, 40], 2: [10, 20, 110, 70]}  # the first class is 1; the cup came by its alias
    _, target = await asyncio.to_thread(dataset.__getitem__, dataset.ids.index(selection["chelsea"]))
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert seen == [selection["coffee"], selection["chelsea"]]


async def test_classes_no_label_has_or_naming_one_label_twice_are_refused(selection, annotation_client):
    tag = selection["tag"]
    await _alias(annotation_client, f"{tag} cat", f"{tag} kitty")
    with pytest.raises(ValueError, match="no label is named 'no such label'"):
        await asyncio.to_thread(_dataset, selection, classes=[f"{tag} cat", "no such label"])
    with pytest.raises(ValueError, match=f"same label: '{tag} cat'"):
        await asyncio.to_thread(_dataset, selection, classes=[f"{tag} cat", f"{tag} kitty"])


async def test_the_dataset_crosses_into_worker_processes_as_a_dataloader_sends_it(selection):
    dataset = await asyncio.to_thread(_dataset, selection)
    await asyncio.to_thread(dataset.__getitem__, 0)  # its pool has sockets now: they must not travel
    here = [(await asyncio.to_thread(dataset.__getitem__, i))[1]["boxes"].tolist() for i in range(len(dataset))]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = await asyncio.get_running_loop().run_in_executor(None, lambda: list(pool.map(_boxes, [(dataset, i) for i in range(len(dataset))])))
    assert sorted(map(sorted, there)) == sorted(map(sorted, here)) and len(there) == 2


async def test_a_refused_key_is_an_error_that_names_the_answer(selection):
    with pytest.raises(CorpusRequestFailed, match="answered 401"):
        await asyncio.to_thread(CorpusDetection, selection["search"], selection["annotation"], "ick_not_a_key", query={"tags": selection["tag"]})


def test_a_service_that_does_not_answer_is_the_same_error_type():
    from tests.processes import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused at once, after urllib3's retries
    with pytest.raises(CorpusRequestFailed, match="got no answer"):
        CorpusDetection(nowhere, nowhere, "ick_whatever", query={}, classes=["cat"], timeout=2)


async def test_keypoints_come_as_torchvision_takes_them_for_classes_that_share_a_schema(selection, annotation_client):
    tag = selection["tag"]
    names = ["head", "left_hand", "right_hand"]
    made = await annotation_client.post("/v1/labels", json={"name": f"{tag} walker", "keypoints": names, "skeleton": [[1, 2], [1, 3]]})
    assert made.status == 201, await made.text()
    points = [[60, 40, 2], [30, 80, 1], [0, 0, 0]]
    items = [
        {"image_id": selection["chelsea"], "type": "bbox", "label": f"{tag} walker", "bbox": [20, 20, 100, 100], "keypoints": points},
        {"image_id": selection["chelsea"], "type": "bbox", "label": f"{tag} walker", "bbox": [200, 50, 40, 40]},  # no points
    ]
    created = await annotation_client.post("/v1/annotations/bulk", json={"items": items})
    assert (await created.json())["created"] == 2, await created.text()
    dataset = await asyncio.to_thread(_dataset, selection, classes=[f"{tag} walker"], keypoints=True)
    assert dataset.keypoint_names == names
    _, target = await asyncio.to_thread(dataset.__getitem__, dataset.ids.index(selection["chelsea"]))
    order = np.argsort(target["boxes"][:, 0])
    assert target["keypoints"].dtype == np.float32 and target["keypoints"].shape == (2, 3, 3)
    assert target["keypoints"][order].tolist() == [points, [[0, 0, 0]] * 3]  # unlabelled throughout: torchvision ignores them
    _, coffee = await asyncio.to_thread(dataset.__getitem__, dataset.ids.index(selection["coffee"]))
    assert coffee["keypoints"].shape == (0, 3, 3)
    # A schema changed after annotating: the points made before it are unlabelled, not a ragged array.
    label = await (await annotation_client.get("/v1/labels/resolve", params={"name": f"{tag} walker"})).json()
    assert (await annotation_client.patch(f"/v1/labels/{label['id']}", json={"keypoints": [*names, "tail"]})).status == 200
    changed = await asyncio.to_thread(_dataset, selection, classes=[f"{tag} walker"], keypoints=True)
    _, target = await asyncio.to_thread(changed.__getitem__, changed.ids.index(selection["chelsea"]))
    assert target["keypoints"].shape == (2, 4, 3) and not target["keypoints"][..., 2].any()
    with pytest.raises(ValueError, match=f"'{tag} cat' have no keypoint schema"):
        await asyncio.to_thread(_dataset, selection, classes=[f"{tag} walker", f"{tag} cat"], keypoints=True)
