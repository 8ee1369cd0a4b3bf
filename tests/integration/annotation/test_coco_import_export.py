"""The COCO sample through ``annotations.imported``: 939 annotations, 71 used categories, normalised;
bad annotations recorded beside the good ones; redelivery creates nothing twice; and export
(COCO, YOLO, YOLO segmentation, VOC with its segmentation PNGs) reproduces the boxes, masks and categories."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from xml.etree import ElementTree as ET

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from services.annotation.adapters.store import ANNOTATIONS, IMPORT_ERRORS, LABELS
from shared.bus import Bus
from shared.events import AnnotationsImported, Envelope, ImportedAnnotation
from shared.naming import normalize_name
from shared.settings import CorpusSettings
from tests.conftest import eventually
from tests.stack import rabbit_management
from tests.integration.annotation import coco_events
from tests.integration.annotation.conftest import add_image
from tests.photos import require_coco

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

DATASET = "coco128"


async def publish(names, events: list) -> None:
    bus = Bus(CorpusSettings(**names, service_name="annotation-tests"))
    await bus.connect()
    try:
        for event in events:
            await bus.publish(Envelope.wrap(event, producer="ingest"))
    finally:
        await bus.close()


@pytest.fixture(scope="module")
async def imported(annotation_client, names, base_settings):
    """The whole sample imported once for this module (photos in MinIO, documents in images)."""
    from shared.clients.blobs import BlobStore
    from shared.clients.mongo import database, mongo_client

    coco = require_coco()
    data = coco_events.load(coco)
    client, blobs = mongo_client(base_settings), BlobStore(base_settings)
    await blobs.ensure_bucket()
    db = database(client, base_settings)
    image_ids = await coco_events.place_images(coco, data, db, blobs)
    events = coco_events.events(data, image_ids, DATASET)
    await publish(names, events)

    async def all_there():
        return await db[ANNOTATIONS].count_documents({"dataset": DATASET}) == len(data["annotations"])

    await eventually(all_there, timeout=120)
    yield {"data": data, "image_ids": image_ids, "events": events, "coco": coco}
    await blobs.close()
    await client.close()


async def test_the_sample_arrives_with_939_annotations_and_71_normalised_categories(imported, mongo_db):
    data = imported["data"]
    assert await mongo_db[ANNOTATIONS].count_documents({"dataset": DATASET, "deleted": False}) == 939
    types = {row["_id"]: row["n"] async for row in await mongo_db[ANNOTATIONS].aggregate(
        [{"$match": {"dataset": DATASET}}, {"$group": {"_id": "$type", "n": {"$sum": 1}}}])}  # fmt: skip
    assert types == {"polygon": 929, "mask": 10}
    used = await mongo_db[ANNOTATIONS].distinct("label_id", {"dataset": DATASET})
    assert len(used) == 71
    labels = await mongo_db[LABELS].find({"_id": {"$in": used}}).to_list()
    expected = {normalize_name(c["name"]): str(c["id"]) for c in data["categories"]}
    assert {label["name"]: label["external_ids"][DATASET] for label in labels} == {
        name: cid for name, cid in expected.items() if name in {label["name"] for label in labels}
    }
    assert all(label["name"] == normalize_name(label["name"]) for label in labels)
    # The supercategory became the parent ("vehicle" above "bicycle"), and "person" is not its own parent.
    bicycle = await mongo_db[LABELS].find_one({"name": "bicycle"})
    assert (await mongo_db[LABELS].find_one({"_id": bicycle["parent_id"]}))["name"] == "vehicle"
    assert (await mongo_db[LABELS].find_one({"name": "person"}))["parent_id"] is None
    assert await mongo_db[IMPORT_ERRORS].count_documents({"dataset": DATASET}) == 0


async def test_redelivery_creates_nothing_twice(imported, names, mongo_db):
    first = imported["events"][0]
    marker = first.model_copy(update={
        "dataset": "coco128-marker", "categories": [],
        "annotations": [ImportedAnnotation(source_id="m", type="classification", label="marker")],
    })  # fmt: skip
    await publish(names, [*imported["events"][:5], marker])
    await eventually(lambda: mongo_db[ANNOTATIONS].find_one({"dataset": "coco128-marker"}))
    await eventually(lambda: _queue_empty(names))  # ready and unacknowledged: every message handled
    assert await mongo_db[ANNOTATIONS].count_documents({"dataset": DATASET}) == 939


async def _queue_empty(names) -> bool:
    """RabbitMQ's management API counts ready and unacknowledged messages together."""
    body = await rabbit_management("GET", f"/queues/%2F/{CorpusSettings(**names).queue_name('annotation')}")
    return body.get("messages") == 0 and body.get("messages_unacknowledged") == 0


async def test_a_bad_annotation_is_recorded_and_does_not_lose_the_good_ones(imported, names, mongo_db):
    image_id = await add_image(mongo_db, 640, 480)
    good = ImportedAnnotation(source_id="extra-good", type="bbox", label="Traffic_Light", bbox=[1, 1, 10, 10])
    outside = ImportedAnnotation(source_id="extra-outside", type="bbox", label="car", bbox=[1, 1, 10_000, 10])
    bad_rle = ImportedAnnotation(source_id="extra-rle", type="mask", label="car", rle={"size": [1, 1], "counts": "0"})
    event = AnnotationsImported(
        import_id="bad-one", dataset="coco128-extra", image_id=image_id, image_width=640, image_height=480,
        annotations=[outside, good, bad_rle],
    )  # fmt: skip
    await publish(names, [event])

    async def recorded():
        return await mongo_db[IMPORT_ERRORS].find({"import_id": "bad-one"}).to_list() if await mongo_db[IMPORT_ERRORS].count_documents({"import_id": "bad-one"}) == 2 else None

    errors = {e["source_id"]: e["reason"] for e in await eventually(recorded)}
    assert errors == {"extra-outside": "outside_image", "extra-rle": "rle_size_mismatch"}
    created = await mongo_db[ANNOTATIONS].find_one({"dataset": "coco128-extra", "source_id": "extra-good"})
    assert created is not None and created["bbox"] == [1, 1, 10, 10]


async def _export(client, **body) -> zipfile.ZipFile:
    response = await client.post("/v1/exports", json=body)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/zip"
    return zipfile.ZipFile(io.BytesIO(await response.read()))


def _mask(segmentation, height, width):
    if isinstance(segmentation, list):
        return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width)))
    if isinstance(segmentation["counts"], str):  # compressed, as exported
        return coco_mask.decode({"size": segmentation["size"], "counts": segmentation["counts"].encode()})
    return coco_mask.decode(coco_mask.frPyObjects(segmentation, height, width))


async def test_coco_export_reproduces_boxes_masks_and_categories(imported, annotation_client):
    data = imported["data"]
    archive = await _export(annotation_client, format="coco", dataset=DATASET)
    exported = json.loads(archive.read("annotations/instances.json"))
    used = {a["category_id"] for a in data["annotations"]}
    assert {(c["id"], c["name"]) for c in exported["categories"]} == {
        (c["id"], normalize_name(c["name"])) for c in data["categories"] if c["id"] in used
    }
    assert len(exported["annotations"]) == 939
    original_images = {i["id"]: i for i in data["images"]}
    exported_images = {i["id"]: i for i in exported["images"]}

    def keyed(annotations, images):
        out = {}
        for a in annotations:
            image = images[a["image_id"]]
            key = (image["file_name"], a["category_id"], tuple(round(v, 2) for v in a["bbox"]))
            out.setdefault(key, []).append((a["segmentation"], image["height"], image["width"], a["iscrowd"]))
        return out

    before, after = keyed(data["annotations"], original_images), keyed(exported["annotations"], exported_images)
    assert sorted(before) == sorted(after)  # the same boxes, per image and category
    for key, originals in before.items():
        [(seg_a, h, w, crowd_a)], [(seg_b, _, _, crowd_b)] = originals[:1], after[key][:1]
        assert crowd_a == crowd_b
        assert np.array_equal(_mask(seg_a, h, w), _mask(seg_b, h, w)), key  # the same pixels
    for image in exported["images"]:
        raw = archive.read(f"images/{image['file_name']}")
        assert raw == (imported["coco"] / "images" / image["file_name"]).read_bytes()


async def test_yolo_and_voc_exports(imported, annotation_client):
    data = imported["data"]
    image = next(i for i in data["images"] if i["file_name"] == "000000000009.jpg")
    ours = [a for a in data["annotations"] if a["image_id"] == image["id"]]
    image_id = imported["image_ids"][image["id"]]
    yolo = await _export(annotation_client, format="yolo", image_ids=[image_id])
    classes = yolo.read("classes.txt").decode().splitlines()
    lines = yolo.read("labels/000000000009.txt").decode().splitlines()
    assert len(lines) == len(ours)
    names = {c["id"]: c["name"] for c in data["categories"]}
    expected = sorted((names[a["category_id"]], round((a["bbox"][0] + a["bbox"][2] / 2) / image["width"], 4)) for a in ours)
    got = sorted((classes[int(line.split()[0])], round(float(line.split()[1]), 4)) for line in lines)
    assert got == expected
    assert hashlib.sha256(yolo.read("images/000000000009.jpg")).hexdigest() == image_id
    voc = await _export(annotation_client, format="voc", image_ids=[image_id])
    xml = voc.read("Annotations/000000000009.xml").decode()
    assert xml.count("<object>") == len(ours) and "<width>640</width>" in xml
    assert "JPEGImages/000000000009.jpg" in voc.namelist()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def _png(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    image = Image.open(io.BytesIO(archive.read(name)))
    assert image.mode == "P"
    return np.array(image)


SEGMENTED = "000000000257"  # polygons in several parts, and a crowd mask


def _segmented_image(imported) -> tuple[dict, list[dict], dict[int, str], str]:
    """That sample image: its COCO entry, its annotations, the category names (normalised) and its image id."""
    data = imported["data"]
    image = next(i for i in data["images"] if i["file_name"] == f"{SEGMENTED}.jpg")
    ours = [a for a in data["annotations"] if a["image_id"] == image["id"]]
    assert any(a["iscrowd"] for a in ours) and any(len(a["segmentation"]) > 1 for a in ours if not a["iscrowd"])
    names = {c["id"]: normalize_name(c["name"]) for c in data["categories"]}
    return image, ours, names, imported["image_ids"][image["id"]]


def _box_key(name: str, bbox: list[float]) -> tuple:
    """The box as VOC writes it: 1-based pixel numbers, both ends included."""
    x, y, w, h = bbox
    return name, round(x) + 1, round(y) + 1, round(x + w), round(y + h)


def _voc_key(obj: ET.Element) -> tuple:
    return obj.find("name").text, *(int(obj.find(f"bndbox/{t}").text) for t in ("xmin", "ymin", "xmax", "ymax"))


async def test_voc_segmentation_pngs_reproduce_the_polygons_and_masks(imported, annotation_client):
    """The SegmentationObject PNG shows each <object> where pycocotools decodes its source annotation,
    less what later objects cover (IoU >= 0.99); the SegmentationClass PNG holds the index labelmap.txt
    gives its label."""
    image, ours, names, image_id = _segmented_image(imported)
    height, width = image["height"], image["width"]
    by_box = {_box_key(names[a["category_id"]], a["bbox"]): a for a in ours}
    assert len(by_box) == len(ours)  # each <object> names its source by label and box

    voc = await _export(annotation_client, format="voc", image_ids=[image_id])
    root = ET.fromstring(voc.read(f"Annotations/{SEGMENTED}.xml"))
    assert root.find("segmented").text == "1"
    objects = [by_box[_voc_key(obj)] for obj in root.findall("object")]
    assert len(objects) == len(ours)
    instances, classes = _png(voc, f"SegmentationObject/{SEGMENTED}.png"), _png(voc, f"SegmentationClass/{SEGMENTED}.png")
    assert instances.shape == classes.shape == (height, width)
    labelmap = [line.split(":")[0] for line in voc.read("labelmap.txt").decode().splitlines() if not line.startswith("#")]
    covered = np.zeros((height, width), bool)
    for n in range(len(objects), 0, -1):  # from the top: a later object covers the earlier ones
        source = _mask(objects[n - 1]["segmentation"], height, width).astype(bool)
        visible = source & ~covered
        assert _iou(instances == n, visible) >= 0.99 if visible.any() else not (instances == n).any(), n
        assert np.all(classes[instances == n] == labelmap.index(names[objects[n - 1]["category_id"]]))
        covered |= source
    assert np.array_equal(classes > 0, covered)
    assert voc.read("ImageSets/Segmentation/default.txt").decode() == f"{SEGMENTED}\n"


def _filled(outline: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels inside an outline as YOLO's loaders fill it (cv2.fillPoly, even-odd), to a sixteenth of a pixel."""
    canvas = np.zeros((height, width), np.uint8)
    cv2.fillPoly(canvas, [np.round(outline * 16).astype(np.int32)], 1, shift=4)
    return canvas.astype(bool)


async def test_yolo_seg_export_has_one_outline_per_object_that_fills_back_to_it(imported, annotation_client):
    image, ours, names, image_id = _segmented_image(imported)
    height, width = image["height"], image["width"]
    archive = await _export(annotation_client, format="yolo-seg", image_ids=[image_id])
    assert f"images/{SEGMENTED}.jpg" in archive.namelist() and archive.read("data.yaml").startswith(b"path: .")
    classes = archive.read("classes.txt").decode().splitlines()
    rows = [line.split() for line in archive.read(f"labels/{SEGMENTED}.txt").decode().splitlines()]
    lines = [(classes[int(cls)], np.array(coords, float).reshape(-1, 2) * (width, height)) for cls, *coords in rows]
    assert len(lines) == len(ours)  # an object in several parts, or a crowd mask in pieces, is still one line
    for a in (a for a in ours if not a["iscrowd"]):
        rings = [np.array(ring, float).reshape(-1, 2) for ring in a["segmentation"]]
        vertices = np.concatenate(rings)

        def carries_every_part(outline: np.ndarray) -> bool:
            # every vertex of every part, plus both ends of each bridge once more
            return len(outline) == len(vertices) + 2 * (len(rings) - 1) and all(
                np.abs(outline - v).max(axis=1).min() < 1e-3 for v in vertices
            )

        n = next(n for n, (name, outline) in enumerate(lines) if name == names[a["category_id"]] and carries_every_part(outline))
        outline = lines.pop(n)[1]
        parts = np.logical_or.reduce([_filled(ring, height, width) for ring in rings])
        assert not (parts & ~_filled(outline, height, width)).any()  # filled as YOLO fills it: every part, whole
    [crowd] = [a for a in ours if a["iscrowd"]]
    [(name, outline)] = lines  # what is left: the crowd mask's outline
    assert name == names[crowd["category_id"]]
    traced = _mask([outline.reshape(-1).tolist()], height, width).astype(bool)
    assert _iou(traced, _mask(crowd["segmentation"], height, width).astype(bool)) > 0.95


async def test_an_unknown_format_is_refused_naming_the_formats(annotation_client):
    response = await annotation_client.post("/v1/exports", json={"format": "yolov8", "image_ids": ["x"]})
    assert response.status == 422
    assert "'coco', 'yolo', 'yolo-seg', 'yolo-pose', 'voc' or 'imagefolder'" in (await response.json())["errors"][0]["msg"]


async def _until_search_shows(search_client, expected: set[str], **params: str) -> None:
    """The search mirror catches up with the import through annotation events; wait for it."""

    async def mirrored():
        response = await search_client.get("/v1/search", params={**params, "limit": "100"})
        return {item["image_id"] for item in (await response.json())["items"]} == expected

    await eventually(mirrored, timeout=60)


async def test_export_by_search_query_holds_exactly_what_search_matches(imported, annotation_client, search_client, mongo_db):
    """The annotation service pages through the search service: the archive holds every matching image
    (by label and width, in the search's order) with all of their annotations, and nothing else."""
    data = imported["data"]
    names = {c["id"]: normalize_name(c["name"]) for c in data["categories"]}
    wide = {i["id"] for i in data["images"] if i["width"] >= 600}
    expected = {
        imported["image_ids"][a["image_id"]] for a in data["annotations"] if names[a["category_id"]] in ("zebra", "giraffe", "bus") and a["image_id"] in wide
    }  # fmt: skip
    query = {"labels": ["zebra", "giraffe", "bus"], "min_width": 600, "sort": "width"}
    assert len(expected) > 2

    await _until_search_shows(search_client, expected, labels="zebra,giraffe,bus", min_width="600")
    archive = await _export(annotation_client, format="coco", search=query)
    exported = json.loads(archive.read("annotations/instances.json"))
    by_sha = {hashlib.sha256(archive.read(f"images/{i['file_name']}")).hexdigest(): i for i in exported["images"]}
    assert set(by_sha) == expected
    widths = [image["width"] for image in exported["images"]]
    assert widths == sorted(widths)  # the search's order
    current = await mongo_db[ANNOTATIONS].count_documents({"image_id": {"$in": sorted(expected)}, "deleted": False})
    assert len(exported["annotations"]) == current
    carrying = {a["image_id"] for a in exported["annotations"] if a["category_id"] in {c["id"] for c in exported["categories"] if c["name"] in ("zebra", "giraffe", "bus")}}
    assert carrying == {i["id"] for i in exported["images"]}


async def test_export_by_search_query_explains_a_bad_query(imported, annotation_client):
    bad_sort = await annotation_client.post("/v1/exports", json={"format": "coco", "search": {"labels": "zebra", "sort": "colour"}})
    assert bad_sort.status == 422 and "sort must be one of" in (await bad_sort.json())["detail"]
    paging = await annotation_client.post("/v1/exports", json={"format": "coco", "search": {"labels": "zebra", "cursor": "x"}})
    assert paging.status == 422 and "cursor" in (await paging.json())["detail"]
    nothing = await annotation_client.post("/v1/exports", json={"format": "coco", "search": {"labels": "no such label anywhere"}})
    assert nothing.status == 422 and (await nothing.json())["type"].endswith("/empty-selection")
    both = await annotation_client.post("/v1/exports", json={"format": "coco", "dataset": DATASET, "search": {"labels": "zebra"}})
    assert both.status == 422 and "dataset and search" in (await both.json())["detail"]


async def test_cli_exports_by_search_query(imported, annotation_client, search_client, tmp_path):
    from tests.integration.annotation.test_cli import corpus

    data = imported["data"]
    zebra = {c["id"] for c in data["categories"] if c["name"] == "zebra"}
    expected = {imported["image_ids"][a["image_id"]] for a in data["annotations"] if a["category_id"] in zebra}
    await _until_search_shows(search_client, expected, labels="zebra")
    out = tmp_path / "zebra.zip"
    assert "wrote" in await corpus(annotation_client, "export", "--format", "yolo", "--search", "labels=Zebra&sort=width", "--out", str(out))
    with zipfile.ZipFile(out) as archive:
        images = [name for name in archive.namelist() if name.startswith("images/")]
        assert {hashlib.sha256(archive.read(name)).hexdigest() for name in images} == expected
        assert archive.read("classes.txt").decode().splitlines().count("zebra") == 1


async def test_search_selection_refuses_more_than_the_limit_and_says_when_search_is_down(imported, search_client):
    from services.annotation.adapters.search_service import SearchService
    from shared.problems import Problem
    from tests.conftest import ADMIN

    search = SearchService(str(search_client.make_url("")))
    try:
        with pytest.raises(Problem) as too_many:
            await search.matching_image_ids({"labels": "person"}, ADMIN["Authorization"], limit=3)
        assert too_many.value.status == 413 and too_many.value.extensions["matched"] > 3
        with pytest.raises(Problem) as no_key:
            await search.matching_image_ids({"labels": "person"}, None, limit=3)
        assert no_key.value.status == 401
    finally:
        await search.close()
    down = SearchService("http://127.0.0.1:9")  # discard port: nothing listens
    try:
        with pytest.raises(Problem) as unavailable:
            await down.matching_image_ids({"labels": "person"}, ADMIN["Authorization"], limit=3)
        assert unavailable.value.status == 503 and unavailable.value.headers["Retry-After"]
    finally:
        await down.close()


async def test_export_of_unknown_images_is_404(annotation_client):
    response = await annotation_client.post("/v1/exports", json={"format": "coco", "image_ids": ["nope"]})
    assert response.status == 404 and (await response.json())["missing"] == ["nope"]
