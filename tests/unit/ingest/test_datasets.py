"""Dataset readers: the COCO sample as published, and YOLO / VOC / folder datasets made from it."""

import json

import pytest
from pycocotools import mask as mask_utils

from services.ingest.domain.datasets import DatasetError, in_pixels, read_dataset
from services.ingest.domain.datasets.model import inside
from services.ingest.domain.errors import ImageRefused
from services.ingest.importer import read_inside
from tests.photos import require_coco
from tests.unit.ingest.datasets import make_folder, make_voc, make_yolo, voc_object, write_coco, write_voc, write_yolo


def test_coco_sample_reads_every_image_annotation_and_category():
    coco = require_coco()
    ds = read_dataset("coco", coco / "annotations" / "instances.json", "coco128")
    assert len(ds.items) == 128
    assert all(item.path.is_file() for item in ds.items)
    anns = [a for item in ds.items for a in item.annotations]
    assert len(anns) == 939
    assert sum(a.type == "polygon" for a in anns) == 929
    masks = [a for a in anns if a.type == "mask"]
    assert len(masks) == 10
    assert all(isinstance(m.rle["counts"], str) and len(m.bbox) == 4 for m in masks)
    # The compressed RLE holds the same pixels as the JSON's uncompressed runs (odd runs are ones).
    raw = {a["id"]: a for a in json.loads((coco / "annotations" / "instances.json").read_text())["annotations"]}
    for mask in masks:
        runs = raw[int(mask.source_id)]["segmentation"]["counts"]
        rle = {"size": mask.rle["size"], "counts": mask.rle["counts"].encode()}
        assert int(mask_utils.area(rle)) == sum(runs[1::2])
    assert ds.categories["person"].external_id == "1"
    assert ds.categories["bicycle"].parent == "vehicle"
    assert "vehicle" in ds.categories  # a supercategory becomes a parent label
    assert ds.items[0].licence and ds.items[0].uri.startswith("http://images.cocodataset.org/")


def test_coco_folder_path_finds_its_json():
    ds = read_dataset("coco", require_coco(), "coco128")
    assert len(ds.items) == 128


def test_yolo_boxes_come_back_in_pixels(tmp_path):
    doc = make_yolo(tmp_path)
    ds = read_dataset("yolo", tmp_path, "yolo")
    assert len(ds.items) == len(doc["images"])
    item = ds.items[0]
    image = doc["images"][0]
    expected = [a["bbox"] for a in doc["annotations"] if a["image_id"] == image["id"]]
    got = [in_pixels(a, image["width"], image["height"]).bbox for a in item.annotations]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=0.05)


def test_voc_boxes_match_the_coco_boxes(tmp_path):
    doc = make_voc(tmp_path)
    ds = read_dataset("voc", tmp_path, "voc")
    assert len(ds.items) == len(doc["images"])
    assert all(item.path.is_file() for item in ds.items)
    image = doc["images"][0]
    expected = [a["bbox"] for a in doc["annotations"] if a["image_id"] == image["id"]]
    got = [a.bbox for a in ds.items[0].annotations]
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=0.11)


def test_folder_parent_is_the_class(tmp_path):
    classes = make_folder(tmp_path)
    ds = read_dataset("folder", tmp_path, "pets")
    assert len(ds.items) == 4
    labels = {item.path.name: item.annotations[0].label for item in ds.items}
    assert {labels[n] for n in classes["Cats"]} == {"cats"}
    assert {labels[n] for n in classes["traffic_light"]} == {"traffic light"}
    assert all(item.annotations[0].type == "classification" for item in ds.items)


def test_unreadable_datasets_say_what_to_fix(tmp_path):
    with pytest.raises(DatasetError, match="classes.txt"):
        read_dataset("yolo", tmp_path, "x")
    with pytest.raises(DatasetError, match="No COCO JSON"):
        read_dataset("coco", tmp_path, "x")
    with pytest.raises(DatasetError, match="Unknown import kind"):
        read_dataset("csv", tmp_path, "x")


# Malformed metadata: the dataset's own files fail the job, one item's annotation is a warning.

PHOTO = b"not decoded by the readers"
NAN, INF = float("nan"), float("inf")


def _coco(images=None, annotations=(), categories=({"id": 1, "name": "cat"},)) -> dict:
    images = images if images is not None else [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}]
    return {"images": images, "annotations": list(annotations), "categories": list(categories)}


@pytest.mark.parametrize(
    ("categories", "field"),
    [([{"id": 1}], "'name'"), ([{"name": "cat"}], "'id'"), (["cat"], "'id' and 'name'"), ([{"id": [1], "name": "cat"}], "'id'")],
)
def test_coco_categories_the_labels_cannot_be_made_from_fail_the_dataset_naming_file_and_field(tmp_path, categories, field):
    index = write_coco(tmp_path, _coco(categories=categories))
    with pytest.raises(DatasetError, match=field) as failed:
        read_dataset("coco", tmp_path, "x")
    assert str(index) in str(failed.value)


@pytest.mark.parametrize("doc", ["[]", '{"images": {"a": 1}}', '{"images": [], "annotations": 3}', "\xff"])
def test_coco_json_that_is_not_instances_json_fails_the_dataset(tmp_path, doc):
    write_coco(tmp_path, {}).write_bytes(doc.encode("latin-1"))
    with pytest.raises(DatasetError, match="is not COCO instances JSON"):
        read_dataset("coco", tmp_path, "x")


def test_coco_bad_annotations_and_image_entries_are_warnings_and_the_rest_is_read(tmp_path):
    good = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "segmentation": [[1, 1, 5, 1, 5, 5]]}
    bad = [
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": ["x", 1, 2, 3]},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [NAN, 1, 2, 3]},
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 3], "segmentation": [[1, 1, INF, 1, 5, 5]]},
        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 3], "iscrowd": 1, "segmentation": {"counts": "\xff\xff", "size": [48, 64]}},
        {"id": 6, "image_id": 1, "category_id": 1, "segmentation": {"counts": [1, NAN], "size": [48, 64]}},
        {"id": 7, "image_id": 1, "category_id": 1, "segmentation": {"counts": [3, 4]}},
        {"id": 8, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 3], "area": "large"},
        {"image_id": 1, "category_id": 1},
        "not an object",
    ]
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}, {"id": 2}, {"file_name": "c.jpg"}]
    write_coco(tmp_path, _coco(images=images, annotations=[good, *bad]), {"a.jpg": PHOTO})
    ds = read_dataset("coco", tmp_path, "x")
    assert [item.path.name for item in ds.items] == ["a.jpg"]
    assert [a.source_id for a in ds.items[0].annotations] == ["1"]
    assert ds.items[0].annotations[0].polygon == [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]]
    warnings = "\n".join(ds.warnings)
    for number in range(2, 9):
        assert f"annotation {number} of a.jpg" in warnings
    assert "'bbox': not all numbers" in warnings and "not all finite (NaN or infinity)" in warnings
    assert "annotation #8: no usable 'id' and 'image_id'" in warnings and "annotation #9" in warnings
    assert "image #1: no usable 'id' and 'file_name'" in warnings and "image #2" in warnings


def test_yolo_an_undecodable_label_file_is_a_warning_and_its_image_still_comes(tmp_path):
    write_yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n", "b": b"\xff\xfe bad bytes\n"}, {"a.jpg": PHOTO, "b.jpg": PHOTO})
    ds = read_dataset("yolo", tmp_path, "x")
    assert [(item.path.name, len(item.annotations)) for item in ds.items] == [("a.jpg", 1), ("b.jpg", 0)]
    assert ds.warnings == ["labels/b.txt: not UTF-8 text (invalid start byte at byte 0); its labels are skipped"]


def test_yolo_non_finite_coordinates_are_warnings_and_the_image_keeps_its_good_boxes(tmp_path):
    lines = ["0 nan inf 0.1 0.1", "1 0.5 0.5 inf 0.2", "0 0.1 0.1 0.2 0.1 -infinity 0.3", "0 1e308 1e308 1e308 1e308", "1 0.5 0.5 0.2 0.2"]
    write_yolo(tmp_path, {"a": "\n".join(lines)}, {"a.jpg": PHOTO})
    ds = read_dataset("yolo", tmp_path, "x")
    assert [(a.source_id, a.label) for a in ds.items[0].annotations] == [("labels/a.txt:5", "dog")]
    assert [w.split(": ", 1)[0] for w in ds.warnings] == [f"labels/a.txt:{n}" for n in range(1, 5)]
    assert all("not all finite" in w for w in ds.warnings[:3]) and "far outside 0..1" in ds.warnings[3]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data.yaml", "names: [a, b\n  : : :\n", "data.yaml is not valid YAML"),
        ("data.yaml", "- a\n- b\n", "must be a mapping with 'names'"),
        ("data.yaml", "names:\n  zero: a\n  one: b\n", "keys of 'names' must be class numbers"),
        ("classes.txt", "\xff\xfe", "classes.txt is not UTF-8 text"),
    ],
)
def test_yolo_class_names_that_cannot_be_read_fail_the_dataset_naming_the_file(tmp_path, name, content, message):
    write_yolo(tmp_path, {}, {"a.jpg": PHOTO})
    (tmp_path / "classes.txt").unlink()
    (tmp_path / name).write_bytes(content.encode("latin-1"))
    with pytest.raises(DatasetError, match=message):
        read_dataset("yolo", tmp_path, "x")


def test_voc_a_bad_field_or_a_non_finite_box_is_a_warning_on_that_object(tmp_path):
    objects = "".join(
        [
            voc_object("cat", (1, 1, 5, 5), "<difficult>abc</difficult>"),
            voc_object("cat", (1, 1, "inf", 5)),
            voc_object("cat", ("-inf", 1, 5, 5)),
            voc_object("cat", ("nan", 1, 5, 5)),
            voc_object("cat", (1, 1, 1e308, 5)).replace("<xmin>1</xmin>", "<xmin>-1e308</xmin>"),
            "<object><name>cat</name><bndbox><xmin>1</xmin></bndbox></object>",
            voc_object("dog", (2, 2, 8, 8), "<difficult>1</difficult>"),
        ]
    )
    write_voc(tmp_path, {"a": ("a.jpg", objects)}, {"a.jpg": PHOTO})
    (tmp_path / "Annotations" / "b.xml").write_text("<annotation><filename>b.jpg")
    ds = read_dataset("voc", tmp_path, "x")
    [item] = ds.items
    assert [(a.label, a.bbox, a.attributes) for a in item.annotations] == [("dog", [1.0, 1.0, 7.0, 7.0], {"difficult": 1})]
    assert ds.warnings[0] == "Annotations/a.xml object 0: <difficult> is 'abc', not a whole number or true/false"
    assert all("not all finite" in w for w in ds.warnings[1:5]), ds.warnings
    assert ds.warnings[5] == "Annotations/a.xml object 5: bndbox without <ymin>"
    assert ds.warnings[6].startswith("Annotations/b.xml: not XML")


def test_coco_images_are_looked_for_inside_the_dataset_only(tmp_path):
    """The reader may name a file outside (a ``../`` or absolute file_name); the importer refuses to read it."""
    elsewhere = tmp_path / "elsewhere.jpg"
    elsewhere.write_bytes(PHOTO)
    images = [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "../../elsewhere.jpg"}, {"id": 3, "file_name": str(elsewhere)}]
    write_coco(tmp_path / "ds", _coco(images=images), {"a.jpg": PHOTO})
    ds = read_dataset("coco", tmp_path / "ds", "x")
    assert ds.home == tmp_path / "ds"
    assert {item.source_id: inside(item.path, ds.home) for item in ds.items} == {"1": True, "2": False, "3": False}


# Reading an item's file: only inside its dataset (and an import root), links followed.


def test_an_item_is_read_only_when_it_resolves_inside_the_dataset_and_an_import_root(tmp_path):
    root, ds = tmp_path / "root", tmp_path / "root" / "ds"
    (ds / "cats").mkdir(parents=True)
    (ds / "cats" / "a.jpg").write_bytes(b"inside")
    (root / "sibling.jpg").write_bytes(b"in the root, not the dataset")
    (tmp_path / "secret.jpg").write_bytes(b"outside")
    (ds / "cats" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (ds / "cats" / "same.jpg").symlink_to(ds / "cats" / "a.jpg")  # a link that stays inside is fine
    (ds / "cats" / "loop.jpg").symlink_to(ds / "cats" / "loop.jpg")
    bounds = (ds, (root,))

    assert read_inside(ds / "cats" / "a.jpg", bounds) == b"inside"
    assert read_inside(ds / "cats" / "same.jpg", bounds) == b"inside"
    for path in (ds / "cats" / "link.jpg", ds / ".." / "sibling.jpg", ds / "cats" / "../../../secret.jpg", tmp_path / "secret.jpg"):
        with pytest.raises(ImageRefused) as refused:
            read_inside(path, bounds)
        assert refused.value.reason == "outside_dataset" and "it was not read" in refused.value.message
    with pytest.raises(ImageRefused) as refused:  # inside the dataset but the import root is elsewhere
        read_inside(ds / "cats" / "a.jpg", (ds, (tmp_path / "other",)))
    assert refused.value.reason == "outside_dataset"
    for path in (ds / "cats" / "missing.jpg", ds / "cats" / "loop.jpg", ds / "nul\x00.jpg"):
        with pytest.raises(ImageRefused) as refused:
            read_inside(path, bounds)
        assert refused.value.reason == "unreadable"


PERSON = {
    "id": 1, "name": "person", "supercategory": "person",
    "keypoints": ["nose", "left_eye", "right_eye"], "skeleton": [[1, 2], [1, 3]],
}  # fmt: skip


def test_coco_person_keypoints_keep_their_points_on_the_object_and_the_schema_on_the_category(tmp_path):
    polygon = [[10, 10, 40, 10, 40, 40]]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "segmentation": polygon,
         "keypoints": [20, 15, 2, 25, 14, 1, 0, 0, 0], "num_keypoints": 2},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": polygon, "keypoints": [0] * 9},  # none labelled
        {"id": 3, "image_id": 1, "category_id": 1, "keypoints": [30, 30, 2, 0, 0, 0, 0, 0, 0]},  # no box, no outline
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "keypoints": [1, 2, 2, 3]},  # not triples
    ]  # fmt: skip
    write_coco(tmp_path, _coco(annotations=annotations, categories=[PERSON]), {"a.jpg": PHOTO})
    ds = read_dataset("coco", tmp_path, "x")
    assert (ds.categories["person"].keypoints, ds.categories["person"].skeleton) == (PERSON["keypoints"], PERSON["skeleton"])
    first, second, third = ds.items[0].annotations
    assert first.type == "polygon" and first.keypoints == [[20, 15, 2], [25, 14, 1], [0, 0, 0]]
    assert second.type == "polygon" and second.keypoints is None
    assert third.type == "keypoints" and third.bbox is None and third.keypoints[0] == [30, 30, 2]
    assert any("annotation 4 of a.jpg: 'keypoints' holds 4 numbers" in w for w in ds.warnings)


def test_coco_a_keypoint_schema_that_does_not_hold_is_a_warning_and_the_category_still_comes(tmp_path):
    bad = {**PERSON, "skeleton": [[1, 9]]}
    write_coco(tmp_path, _coco(categories=[bad]), {"a.jpg": PHOTO})
    ds = read_dataset("coco", tmp_path, "x")
    assert ds.categories["person"].keypoints is None and ds.categories["person"].external_id == "1"
    assert any("keypoint schema not kept" in w and "[1, 9]" in w for w in ds.warnings)


def test_coco_a_box_that_is_not_four_numbers_is_a_warning_and_never_stops_the_import(tmp_path):
    """A 3-number box beside a ring a pixel past the edge once raised in the clipping and wedged the job."""
    from services.ingest.domain.datasets import fitted

    short = {"id": 9, "image_id": 1, "category_id": 1, "bbox": [10, 10, 5], "segmentation": [[0, 0, 64.5, 0, 64.5, 40, 0, 40]]}
    write_coco(tmp_path, _coco(annotations=[short]), {"a.jpg": PHOTO})
    ds = read_dataset("coco", tmp_path, "x")
    assert ds.items[0].annotations == () and any("'bbox' holds 3 numbers" in w for w in ds.warnings)
    from shared.events import ImportedAnnotation

    odd = ImportedAnnotation(source_id="s", type="polygon", label="cat", bbox=[1, 2, 3], polygon=[[0, 0, 64.5, 0, 64.5, 40]])
    assert fitted(odd, 64, 48)[0].polygon == [[0, 0, 64, 0, 64, 40]]  # the ring is clipped; the odd box is left to be refused
