"""Exports of stored values no one checked when they were stored: file names holding paths, stems shared
by two images, an external id that only looks like a number; and selections that cannot be exported
(a dataset with nothing, a search with an object for a value, a bound search refuses), and the CLI's
``--search`` and ``--out`` checked before anything is downloaded."""

from __future__ import annotations

import asyncio
import io
import zipfile
from xml.etree import ElementTree as ET

import pytest
from PIL import Image
from typer.testing import CliRunner

from services.cli import app
from shared.clients.blobs import original_key
from tests.conftest import ADMIN_KEY, RUN_ID
from tests.integration.annotation.conftest import add_image
from tests.photos import skimage_photo, unique_png

pytestmark = pytest.mark.integration


async def _stored(mongo_db, blob_store, photo: str, filename: str) -> str:
    data = unique_png(skimage_photo(photo))
    image_id = await add_image(mongo_db, *Image.open(io.BytesIO(data)).size, data=data, filename=filename)
    await blob_store.put(original_key(image_id), data, "image/png")
    return image_id


async def _annotate(client, image_id: str, **fields) -> None:
    response = await client.post("/v1/annotations", json={"image_id": image_id, **fields})
    assert response.status == 201, await response.text()


async def _export(client, **body) -> zipfile.ZipFile:
    response = await client.post("/v1/exports", json=body)
    assert response.status == 200, await response.text()
    return zipfile.ZipFile(io.BytesIO(await response.read()))


async def test_file_names_holding_paths_stay_inside_their_folders(annotation_client, mongo_db, blob_store):
    evil = await _stored(mongo_db, blob_store, "chelsea.png", "../../probe_evil.jpg")
    nested = await _stored(mongo_db, blob_store, "coffee.png", "sub/dir/probe_nested.jpg")
    for image_id in (evil, nested):
        await _annotate(annotation_client, image_id, type="bbox", label="probe", bbox=[1, 1, 10, 10])
        await _annotate(annotation_client, image_id, type="classification", label="probe class")
    expected = {
        "coco": {"images/probe_evil.jpg", "images/probe_nested.jpg"},
        "yolo": {"images/probe_evil.jpg", "images/probe_nested.jpg", "labels/probe_evil.txt", "labels/probe_nested.txt"},
        "voc": {"JPEGImages/probe_evil.jpg", "JPEGImages/probe_nested.jpg", "Annotations/probe_evil.xml", "Annotations/probe_nested.xml"},
        "imagefolder": {"probe class/probe_evil.jpg", "probe class/probe_nested.jpg"},
    }
    for fmt, members in expected.items():
        names = (await _export(annotation_client, format=fmt, image_ids=[evil, nested])).namelist()
        assert members <= set(names), (fmt, names)
        assert not any(".." in name or "sub/dir" in name for name in names), (fmt, names)


async def test_images_sharing_a_stem_each_keep_their_annotations(annotation_client, mongo_db, blob_store):
    jpg = await _stored(mongo_db, blob_store, "chelsea.png", "probedup.jpg")
    png = await _stored(mongo_db, blob_store, "coffee.png", "probedup.png")
    await _annotate(annotation_client, jpg, type="bbox", label="probe", bbox=[1, 1, 10, 10])
    await _annotate(annotation_client, png, type="bbox", label="probe", bbox=[2, 2, 20, 20])
    yolo = await _export(annotation_client, format="yolo", image_ids=[jpg, png])
    images = sorted(name for name in yolo.namelist() if name.startswith("images/"))
    labels = sorted(name for name in yolo.namelist() if name.startswith("labels/"))
    assert len(images) == len(labels) == 2
    assert [n.removeprefix("images/").rsplit(".", 1)[0] for n in images] == [n.removeprefix("labels/").removesuffix(".txt") for n in labels]
    assert all(yolo.read(name).decode().count("\n") == 1 for name in labels)
    voc = await _export(annotation_client, format="voc", image_ids=[jpg, png])
    xmls = [name for name in voc.namelist() if name.startswith("Annotations/")]
    assert len(xmls) == 2
    assert {ET.fromstring(voc.read(name)).findtext("filename") for name in xmls} == {n.removeprefix("images/") for n in images}


async def test_an_exif_turned_jpeg_is_exported_in_the_frame_its_boxes_use(annotation_client, mongo_db, blob_store):
    import uuid

    import cv2
    import numpy as np

    photo = Image.open(io.BytesIO(skimage_photo("rocket.jpg"))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone held upright: readers that honour the tag turn the picture a quarter
    exif[0x010E] = uuid.uuid4().hex  # ImageDescription: bytes (and so an id) of this test's own
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90, exif=exif.tobytes())
    data = out.getvalue()
    image_id = await add_image(mongo_db, *photo.size, data=data, filename="probe_turned.jpg")
    await blob_store.put(original_key(image_id), data, "image/jpeg")
    width, height = photo.size
    await _annotate(annotation_client, image_id, type="bbox", label="probe", bbox=[width - 60, 10, 50, 40])
    yolo = await _export(annotation_client, format="yolo", image_ids=[image_id])
    exported = yolo.read("images/probe_turned.jpg")
    assert cv2.imdecode(np.frombuffer(exported, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (height, width)  # as Ultralytics reads it
    assert Image.open(io.BytesIO(exported)).getexif()[0x0112] == 1
    assert len(exported) == len(data) and sum(a != b for a, b in zip(exported, data)) == 1  # the pixels as stored
    cx = float(yolo.read("labels/probe_turned.txt").decode().split()[1])
    assert cx == pytest.approx((width - 35) / width, abs=1e-5)  # the box in that frame: near the right edge


async def test_coco_refuses_an_external_id_that_is_not_an_ascii_integer(annotation_client, mongo_db, blob_store):
    image_id = await _stored(mongo_db, blob_store, "camera.png", "probe_scheme.png")
    label = await annotation_client.post("/v1/labels", json={"name": f"probe superscript {RUN_ID}", "external_ids": {"probescheme": "²"}})
    assert label.status in (200, 201), await label.text()
    await _annotate(annotation_client, image_id, type="bbox", label=f"probe superscript {RUN_ID}", bbox=[1, 1, 5, 5])
    response = await annotation_client.post("/v1/exports", json={"format": "coco", "image_ids": [image_id], "id_scheme": "probescheme"})
    assert response.status == 422, await response.text()
    body = await response.json()
    assert body["reason"] == "non_integer_ids" and "not integers" in body["detail"]


async def test_selections_with_nothing_to_export_or_values_a_query_cannot_hold_are_422(annotation_client):
    empty = await annotation_client.post("/v1/exports", json={"format": "coco", "dataset": f"nope-{RUN_ID}"})
    assert empty.status == 422 and (await empty.json())["type"].endswith("/empty-selection")
    nested = await annotation_client.post("/v1/exports", json={"format": "coco", "search": {"labels": {"a": 1}}})
    assert nested.status == 422 and "labels" in (await nested.json())["errors"][0]["msg"]
    huge = await annotation_client.post("/v1/exports", json={"format": "coco", "search": {"min_width": "99999999999999999999"}})
    assert huge.status == 422, await huge.text()
    assert "Retry-After" not in huge.headers and "min_width" in (await huge.json())["detail"]


def _corpus(*args: str):
    return CliRunner().invoke(app, [*args, "--url", "http://127.0.0.1:9", "--key", ADMIN_KEY])


async def test_the_cli_refuses_a_repeated_search_parameter_and_a_missing_folder_before_downloading(tmp_path):
    repeated = await asyncio.to_thread(_corpus, "export", "--search", "labels=zebra&labels=giraffe", "--out", str(tmp_path / "x.zip"))
    assert repeated.exit_code == 2 and "more than once" in repeated.output  # a usage error, before any request
    missing = await asyncio.to_thread(_corpus, "export", "--dataset", "d", "--out", "/nonexistent/dir/x.zip")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert isinstance(missing.exception, SystemExit)  # not a FileNotFoundError after the download


async def test_named_classes_number_every_selection_alike(annotation_client, mongo_db, blob_store, tmp_path):
    """Without them each export numbers the classes its own selection has: a train and a val export disagreed."""
    import json
    import uuid

    tag = uuid.uuid4().hex[:6]
    first = await _stored(mongo_db, blob_store, "chelsea.png", "probe_first.jpg")
    second = await _stored(mongo_db, blob_store, "coffee.png", "probe_second.jpg")
    await _annotate(annotation_client, first, type="bbox", label=f"zz {tag}", bbox=[1, 1, 10, 10])
    await _annotate(annotation_client, second, type="bbox", label=f"aa {tag}", bbox=[1, 1, 10, 10])
    await _annotate(annotation_client, second, type="bbox", label=f"mm {tag}", bbox=[2, 2, 10, 10])  # not a class: left out
    classes = [f"ZZ_{tag}", f"aa {tag}"]
    for image_id, stem, label in ((first, "probe_first", f"zz {tag}"), (second, "probe_second", f"aa {tag}")):
        yolo = await _export(annotation_client, format="yolo", image_ids=[image_id], classes=classes)
        assert yolo.read("classes.txt").decode().splitlines() == [f"zz {tag}", f"aa {tag}"]  # in the order given
        order = [f"zz {tag}", f"aa {tag}"]
        assert [line.split()[0] for line in yolo.read(f"labels/{stem}.txt").decode().splitlines()] == [str(order.index(label))]
        coco = json.loads((await _export(annotation_client, format="coco", image_ids=[image_id], classes=classes)).read("annotations/instances.json"))
        [annotation] = coco["annotations"]
        assert {c["id"]: c["name"] for c in coco["categories"]}[annotation["category_id"]] == label
        assert annotation["category_id"] == 1 + order.index(label)
    refused = await annotation_client.post("/v1/exports", json={"format": "yolo", "image_ids": [first], "classes": ["Cat", "cat "]})
    assert refused.status == 422 and "repeated" in await refused.text()
    out = tmp_path / "train.zip"
    done = await asyncio.to_thread(
        CliRunner().invoke, app,
        ["export", "--format", "yolo", "--image-id", first, "--classes", f'"zz {tag}", aa {tag}', "--out", str(out),
         "--url", str(annotation_client.make_url("")).rstrip("/"), "--key", ADMIN_KEY],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert zipfile.ZipFile(out).read("classes.txt").decode().splitlines() == order


async def test_classes_given_by_alias_or_merged_name_export_their_label_and_unknown_ones_are_refused(annotation_client, mongo_db, blob_store):
    """A typo, or an alias, used to export a class no object carries, without a word."""
    import json
    import uuid

    tag = uuid.uuid4().hex[:6]
    image_id = await _stored(mongo_db, blob_store, "astronaut.png", "probe_alias.jpg")
    await _annotate(annotation_client, image_id, type="bbox", label=f"tvmonitor {tag}", bbox=[1, 1, 10, 10])
    await _annotate(annotation_client, image_id, type="bbox", label=f"sofa {tag}", bbox=[2, 2, 10, 10])
    tv = await (await annotation_client.get("/v1/labels/resolve", params={"name": f"tvmonitor {tag}"})).json()
    assert (await annotation_client.post(f"/v1/labels/{tv['id']}/aliases", json={"alias": f"tv {tag}"})).status == 200
    couch = await (await annotation_client.post("/v1/labels", json={"name": f"couch {tag}"})).json()
    sofa = await (await annotation_client.get("/v1/labels/resolve", params={"name": f"sofa {tag}"})).json()
    merged = await annotation_client.post(f"/v1/labels/{sofa['id']}/merge", json={"into": couch["id"]})
    assert merged.status == 200, await merged.text()

    coco = json.loads((await _export(annotation_client, format="coco", image_ids=[image_id], classes=[f"TV {tag}", f"sofa {tag}"])).read("annotations/instances.json"))
    assert sorted(c["name"] for c in coco["categories"]) == [f"couch {tag}", f"tvmonitor {tag}"]
    assert {c["name"]: c["id"] for c in coco["categories"]} == {f"tvmonitor {tag}": 1, f"couch {tag}": 2}  # in the order given
    assert len(coco["annotations"]) == 2

    unknown = await annotation_client.post("/v1/exports", json={"format": "yolo", "image_ids": [image_id], "classes": [f"tv {tag}", f"tvv {tag}"]})
    assert unknown.status == 422, await unknown.text()
    body = await unknown.json()
    assert body["reason"] == "unknown_classes" and body["unknown"] == [f"tvv {tag}"]
    # An export refused is titled as one (it said "Invalid annotation", of a request that named none).
    assert body["title"] == "Invalid export" and body["type"].endswith("/invalid-export")
    twice = await annotation_client.post("/v1/exports", json={"format": "yolo", "image_ids": [image_id], "classes": [f"tv {tag}", f"tvmonitor {tag}"]})
    assert twice.status == 422 and (await twice.json())["reason"] == "repeated_classes"
