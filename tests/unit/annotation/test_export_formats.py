"""Export formats as pure functions: category ids from external ids, YOLO normalisation, VOC boxes;
VOC segmentation PNGs and YOLO segmentation outlines, compared with pycocotools' own decoding."""

from __future__ import annotations

import io
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from services.annotation.domain import export_formats
from tests.unit.annotation.coco_documents import coco_document
from services.annotation.domain.errors import InvalidAnnotation

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

IMAGES = [{"id": "i1", "file_name": "a.jpg", "width": 200, "height": 100}]
LABELS = {
    "l1": {"name": "cat", "external_ids": {"coco": "17"}, "parent": "animal"},
    "l2": {"name": "dog", "external_ids": {}, "parent": None},
}
ANNOTATIONS = [
    {"image_id": "i1", "label_id": "l1", "type": "bbox", "bbox": [10, 20, 50, 40], "area": 2000},
    {"image_id": "i1", "label_id": "l2", "type": "polygon", "bbox": [0, 0, 10, 10], "polygon": [[0, 0, 10, 0, 10, 10]], "area": 50},
    {"image_id": "i1", "label_id": "l2", "type": "classification", "bbox": None},
]


def test_coco_keeps_external_category_ids_and_numbers_the_rest():
    doc = coco_document(IMAGES, ANNOTATIONS, LABELS, "coco")
    assert doc["categories"] == [{"id": 17, "name": "cat", "supercategory": "animal"}, {"id": 18, "name": "dog", "supercategory": ""}]
    assert [a["category_id"] for a in doc["annotations"]] == [17, 18]  # the classification has no COCO form
    assert doc["annotations"][1]["segmentation"] == [[0, 0, 10, 0, 10, 10]] and doc["annotations"][0]["iscrowd"] == 0


def test_coco_gives_segmentation_to_shapes_only_and_boxes_to_keypoints_that_have_none():
    from pycocotools.coco import COCO

    annotations = [
        *ANNOTATIONS,
        {"image_id": "i1", "label_id": "l1", "type": "keypoints", "keypoints": [[30, 40, 2], [90, 15, 1], [5, 5, 0]]},
        {"image_id": "i1", "label_id": "l2", "type": "mask", "rle": {"size": [100, 200], "counts": "0"}, "bbox": [0, 0, 0, 0],
         "area": 0, "attributes": {"iscrowd": 0}},
        {"image_id": "i1", "label_id": "l2", "type": "mask", "rle": {"size": [100, 200], "counts": "0"}, "bbox": [0, 0, 0, 0], "area": 0},
    ]  # fmt: skip
    doc = coco_document(IMAGES, annotations, LABELS, "coco")
    box, polygon, keypoints, own_flag, crowd = doc["annotations"]
    # An empty 'segmentation' list makes Detectron2 refuse the file and pycocotools fail to decode it.
    assert "segmentation" not in box and "segmentation" not in keypoints and polygon["segmentation"] == [[0, 0, 10, 0, 10, 10]]
    assert keypoints["bbox"] == [30, 15, 60, 25] and keypoints["area"] == 1500 and keypoints["num_keypoints"] == 2
    assert (own_flag["iscrowd"], crowd["iscrowd"]) == (0, 1)  # a COCO import's own flag wins over "RLE means crowd"
    coco = COCO()
    coco.dataset = doc
    coco.createIndex()
    assert coco.getAnnIds(iscrowd=False) == [1, 2, 3, 4] and coco.loadAnns([3])[0]["bbox"] == [30, 15, 60, 25]


def test_voc_keeps_the_flags_a_voc_import_read():
    from services.ingest.domain.datasets.voc import _annotation

    flagged = {**ANNOTATIONS[0], "attributes": {"difficult": 1, "truncated": 0, "occluded": 1, "pose": "Left"}}
    xml = ET.fromstring(export_formats.voc(IMAGES, [flagged, ANNOTATIONS[1]], LABELS)["Annotations/a.xml"])
    first, second = xml.findall("object")
    assert [child.tag for child in first] == ["name", "pose", "truncated", "difficult", "occluded", "bndbox"]
    assert _annotation(first, "a.xml", 0).attributes == flagged["attributes"]
    assert second.findtext("difficult") == "0" and second.find("truncated") is None


def test_yolo_lines_are_normalised_centres():
    files = export_formats.yolo(IMAGES, ANNOTATIONS, LABELS)
    assert files["classes.txt"] == "cat\ndog\n"
    assert files["labels/a.txt"].splitlines()[0] == "0 0.175000 0.400000 0.250000 0.400000"


def test_voc_boxes_are_1_based_inclusive_pixel_numbers():
    xml = ET.fromstring(export_formats.voc(IMAGES, ANNOTATIONS, LABELS)["Annotations/a.xml"])
    box = xml.find("object/bndbox")
    assert [box.find(t).text for t in ("xmin", "ymin", "xmax", "ymax")] == ["11", "21", "60", "60"]  # [10, 20, 50, 40]
    assert len(xml.findall("object")) == 2


@pytest.mark.parametrize("bbox", [[0, 0, 50, 40], [20, 60, 100, 40], [210, 160, 30, 20], [5, 5, 1, 1], [0, 0, 240, 180]])
def test_voc_boxes_come_back_through_the_voc_import(bbox):
    from services.ingest.domain.datasets.voc import _box

    xmin, ymin, xmax, ymax = export_formats.voc_box(bbox)
    obj = ET.fromstring(f"<object><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")
    assert _box(obj) == bbox and 1 <= xmin <= xmax <= 240 and 1 <= ymin <= ymax <= 180


def test_voc_depth_is_the_channel_count_and_yaml_names_are_spelled_as_in_classes_txt():
    import yaml

    images = [{**IMAGES[0], "mode": "L"}]
    xml = ET.fromstring(export_formats.voc(images, ANNOTATIONS, LABELS)["Annotations/a.xml"])
    assert xml.findtext("size/depth") == "1"
    labels = {**LABELS, "l1": {**LABELS["l1"], "name": "ep 😀 smile"}}
    files = export_formats.yolo(IMAGES, ANNOTATIONS, labels)
    assert list(yaml.safe_load(files["data.yaml"])["names"].values()) == files["classes.txt"].splitlines()


# --- segmentation: VOC PNGs and YOLO outlines, checked against pycocotools' own decoding -------------

W, H = 64, 48
SEG_IMAGES = [{"id": "s", "file_name": "seg.jpg", "width": W, "height": H}, {"id": "b", "file_name": "box.png", "width": W, "height": H}]
SEG_LABELS = {"cat": {"name": "cat"}, "dog": {"name": "dog"}}
YY, XX = np.mgrid[:H, :W]
DISC = np.asfortranarray(((XX - 32) ** 2 + (YY - 24) ** 2 < 10**2).astype(np.uint8))  # overlaps SQUARE's right side


def _rle(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask))
    return {"size": encoded["size"], "counts": encoded["counts"].decode()}


SQUARE = {"image_id": "s", "label_id": "dog", "type": "polygon", "bbox": [10, 10, 20, 20], "polygon": [[10, 10, 30, 10, 30, 30, 10, 30]]}
CIRCLE = {"image_id": "s", "label_id": "cat", "type": "mask", "bbox": [23, 15, 19, 19], "rle": _rle(DISC)}
BOX = {"image_id": "s", "label_id": "cat", "type": "bbox", "bbox": [1, 1, 5, 5]}
BOX_ONLY = {"image_id": "b", "label_id": "dog", "type": "bbox", "bbox": [2, 2, 8, 8]}
SEG_ANNOTATIONS = [BOX, SQUARE, CIRCLE, BOX_ONLY]  # objects 1, 2, 3 of seg.jpg; cat is class 1, dog class 2


def _png(files: dict, name: str) -> np.ndarray:
    image = Image.open(io.BytesIO(files[name]))
    assert image.mode == "P" and image.size == (W, H)
    assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]  # VOC colours: background, 1, 2
    return np.array(image)


def test_voc_polygon_square_rasterises_to_its_pixels_with_its_class_index():
    files = export_formats.voc(SEG_IMAGES, [BOX, SQUARE], SEG_LABELS)
    classes = _png(files, "SegmentationClass/seg.png")
    assert np.count_nonzero(classes) == 20 * 20 and np.all(classes[10:30, 10:30] == 2)  # dog, second in name order
    assert files["labelmap.txt"].splitlines()[1:] == ["background:0,0,0::", "cat:128,0,0::", "dog:0,128,0::"]
    objects = _png(files, "SegmentationObject/seg.png")
    assert np.array_equal(objects, np.where(classes == 2, 2, 0))  # the square is the second <object>; the box has no pixels


def test_voc_rle_mask_round_trips_through_segmentation_object():
    files = export_formats.voc(SEG_IMAGES, [CIRCLE], SEG_LABELS)
    objects = _png(files, "SegmentationObject/seg.png")
    assert np.array_equal(objects == 1, coco_mask.decode(CIRCLE["rle"]).astype(bool))


def test_voc_paints_later_objects_over_earlier_ones_in_xml_order():
    files = export_formats.voc(SEG_IMAGES, SEG_ANNOTATIONS, SEG_LABELS)
    xml = ET.fromstring(files["Annotations/seg.xml"])
    assert xml.find("segmented").text == "1" and [o.find("name").text for o in xml.findall("object")] == ["cat", "dog", "cat"]
    square = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(SQUARE["polygon"], H, W))).astype(bool)
    disc = DISC.astype(bool)
    assert (square & disc).any()
    objects, classes = _png(files, "SegmentationObject/seg.png"), _png(files, "SegmentationClass/seg.png")
    assert np.array_equal(objects, np.select([disc, square], [3, 2], 0))
    assert np.array_equal(classes, np.select([disc, square], [1, 2], 0))


def test_voc_images_with_boxes_only_keep_their_xml_alone():
    files = export_formats.voc(SEG_IMAGES, SEG_ANNOTATIONS, SEG_LABELS)
    assert ET.fromstring(files["Annotations/box.xml"]).find("segmented").text == "0"
    assert "SegmentationClass/box.png" not in files and "SegmentationObject/box.png" not in files
    assert files["ImageSets/Segmentation/default.txt"] == "seg\n"
    boxes_only = export_formats.voc(SEG_IMAGES, [BOX, BOX_ONLY], SEG_LABELS)
    assert not [name for name in boxes_only if name.endswith(".png") or name.startswith("ImageSets/")]


def test_voc_refuses_more_objects_than_a_png_can_number():
    many = [BOX] * 254 + [SQUARE]
    with pytest.raises(InvalidAnnotation) as caught:
        export_formats.voc(SEG_IMAGES, many, SEG_LABELS)
    assert caught.value.reason == "voc_too_many"
    assert len(ET.fromstring(export_formats.voc(SEG_IMAGES, [BOX] * 300, SEG_LABELS)["Annotations/seg.xml"]).findall("object")) == 300


def _outlines(text: str) -> list[tuple[int, list[float]]]:
    return [(int(line.split()[0]), [float(v) for v in line.split()[1:]]) for line in text.splitlines()]


def _filled(rings: list[np.ndarray]) -> np.ndarray:
    """Pixels inside, as YOLO's loaders fill an outline (cv2.fillPoly, even-odd rule)."""
    import cv2

    canvas = np.zeros((H, W), np.uint8)
    cv2.fillPoly(canvas, [np.round(ring).astype(np.int32) for ring in rings], 1)
    return canvas.astype(bool)


def test_yolo_seg_writes_an_object_in_two_parts_as_one_bridged_outline():
    two_rings = {**SQUARE, "polygon": [[10, 10, 30, 10, 30, 30, 10, 30], [40, 5, 60, 5, 50, 45]]}
    files = export_formats.yolo_seg(SEG_IMAGES, [BOX, two_rings, BOX_ONLY], SEG_LABELS)
    assert files["classes.txt"] == export_formats.yolo(SEG_IMAGES, [BOX, two_rings, BOX_ONLY], SEG_LABELS)["classes.txt"] == "cat\ndog\n"
    [(cls, coords)] = _outlines(files["labels/seg.txt"])  # one object, one line; the box is not an outline
    assert cls == 1
    outline = np.array(coords).reshape(-1, 2) * [W, H]
    rings = [np.array(ring, float).reshape(-1, 2) for ring in two_rings["polygon"]]
    for vertex in np.concatenate(rings):
        assert np.abs(outline - vertex).max(axis=1).min() < 1e-3  # every vertex of both parts is on the line
    line, parts = _filled([outline]), _filled(rings[:1]) | _filled(rings[1:])
    assert not (parts & ~line).any()  # both parts come back whole
    assert (line & ~parts).sum() <= 12  # and the bridge between them adds a line of pixels at most
    assert all(len(v.split(".")[1]) == 6 for line in files["labels/seg.txt"].splitlines() for v in line.split()[1:])
    assert files["labels/box.txt"] == ""  # boxes only: nothing to outline


@pytest.mark.parametrize(
    "rings",
    [
        [[10, 10, 40, 10, 40, 40, 10, 40], [25, 25, 55, 25, 55, 45, 25, 45]],  # two squares overlapping
        [[5, 5, 60, 5, 60, 45, 5, 45], [20, 15, 40, 15, 40, 35, 20, 35]],  # a square inside another
    ],
    ids=["overlapping", "nested"],
)
def test_yolo_seg_fills_a_polygon_with_overlapping_parts_as_coco_does(rings):
    shape = {**SQUARE, "polygon": rings}
    [(_, coords)] = _outlines(export_formats.yolo_seg(SEG_IMAGES, [shape], SEG_LABELS)["labels/seg.txt"])
    filled = _filled([np.array(coords).reshape(-1, 2) * [W, H]])
    coco = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(rings, H, W))).astype(bool)  # the union
    shared = _filled([np.array(rings[0], float).reshape(-1, 2)]) & _filled([np.array(rings[1], float).reshape(-1, 2)])
    assert shared.sum() > 100 and filled[shared].all()  # the shared pixels are not a hole
    assert (filled & coco).sum() / (filled | coco).sum() > 0.9


def test_bridged_keeps_a_single_ring_as_it_is_and_joins_three_parts_in_one_line():
    from services.annotation.domain.segmentation import bridged

    square = [10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]
    assert bridged([square]) == square
    assert bridged([[1, 2, 3, 4]]) == []  # two points outline nothing
    parts = [square, [40, 5, 60, 5, 50, 20], [40, 30, 60, 30, 50, 45]]
    outline = np.array(bridged(parts)).reshape(-1, 2)
    assert len(outline) == 4 + 3 + 3 + 2 * 2  # every vertex, and each bridge's two ends once more
    union = np.logical_or.reduce([_filled([np.array(p, float).reshape(-1, 2)]) for p in parts])
    line = _filled([outline])
    assert not (union & ~line).any() and (line & ~union).sum() <= 2 * 12  # the parts whole, two bridges at most


def test_yolo_seg_traces_a_mask_to_an_outline_that_rasterises_back():
    [(cls, coords)] = _outlines(export_formats.yolo_seg(SEG_IMAGES, [CIRCLE], SEG_LABELS)["labels/seg.txt"])
    ring = [v * size for v, size in zip(coords, [W, H] * len(coords), strict=False)]
    again = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([ring], H, W))).astype(bool)
    disc = DISC.astype(bool)
    assert cls == 0 and (again & disc).sum() / (again | disc).sum() > 0.9


def test_image_folder_places_each_image_under_every_class_and_names_folders_safely():
    labels = {"a": {"name": "drink/hot"}, "b": {"name": ".hidden"}, "c": {"name": "100%"}, "d": {"name": "cat"}}
    classes = [
        {"image_id": "s", "label_id": label, "type": "classification"} for label in ("a", "b", "c")
    ] + [{"image_id": "b", "label_id": "d", "type": "classification"}]
    images = [*SEG_IMAGES, {"id": "u", "file_name": "none.jpg", "width": W, "height": H}]
    files, paths = export_formats.image_folder(images, [*classes, BOX], {**labels, **SEG_LABELS})
    assert paths == {"s": ["%2Ehidden/seg.jpg", "100%25/seg.jpg", "drink%2Fhot/seg.jpg"], "b": ["cat/box.png"], "u": []}
    assert files["classes.txt"].splitlines() == sorted(["%2Ehidden", "100%25", "drink%2Fhot", "cat"])
    assert files["labels.csv"].splitlines()[1:] == [
        "%2Ehidden/seg.jpg,.hidden", "100%25/seg.jpg,100%", "drink%2Fhot/seg.jpg,drink/hot", "cat/box.png,cat"
    ]
    assert files["unclassified.txt"] == "none.jpg\n"


def test_image_folder_refuses_a_selection_without_classes():
    with pytest.raises(InvalidAnnotation) as caught:
        export_formats.image_folder(SEG_IMAGES, [BOX, BOX_ONLY], SEG_LABELS)
    assert caught.value.reason == "no_classifications"


def test_yolo_seg_keeps_a_masks_hole_empty_when_filled_as_yolo_fills_it():
    ring = np.asfortranarray((((XX - 32) ** 2 + (YY - 24) ** 2 < 20**2) & ((XX - 32) ** 2 + (YY - 24) ** 2 > 10**2)).astype(np.uint8))
    donut = {**CIRCLE, "rle": _rle(ring)}
    [(cls, coords)] = _outlines(export_formats.yolo_seg(SEG_IMAGES, [donut], SEG_LABELS)["labels/seg.txt"])
    filled = _filled([np.array(coords).reshape(-1, 2) * [W, H]])
    assert not filled[24, 32] and not filled[24, 26]  # the hole
    assert filled[24, 16] and filled[24, 47] and filled[10, 32]  # the ring
    assert (filled & ring.astype(bool)).sum() / (filled | ring.astype(bool)).sum() > 0.8  # YOLO's fill paints edges


# --- member names, XML text and category ids from untrusted stored values ---------------------------------


@pytest.mark.parametrize(
    ("stored", "safe"),
    [
        ("../../probe_evil.jpg", "probe_evil.jpg"),
        ("sub/dir/probe_nested.jpg", "probe_nested.jpg"),
        ("C:\\photos\\cat.png", "cat.png"),
        ("..", "id1.jpg"),
        ("a/..", "id1.jpg"),
        ("", "id1.jpg"),
        (None, "id1.jpg"),
        ("ta\x01b\x7fle.jpg", "table.jpg"),
        ("a..b.jpg", "a.b.jpg"),
        ("Photo.JPEG", "Photo.JPEG"),
        # Every name has a stem and an image extension, the way training tools pair images and labels.
        ("noext", "noext.jpg"),
        ("scan.bin", "scan.bin.jpg"),
        ("trailing.", "trailing.jpg"),
        (".jpg", "id1.jpg"),
        ("n" * 255, "n" * 251 + ".jpg"),
        # At most 255 bytes of UTF-8 (what ext4 takes), cut at a character and not left ending in a dot.
        ("é" * 200 + ".png", "é" * 125 + ".png"),
        ("a" * 250 + "." + "x" * 4, "a" * 250 + ".jpg"),
    ],
)
def test_a_stored_file_name_becomes_one_safe_path_segment(stored, safe):
    assert export_formats.safe_file_name(stored, "id1", "jpg") == safe


def test_a_repeated_stem_of_a_long_name_still_fits_in_255_bytes():
    long = "é" * 126 + ".jpg"  # 256 bytes cut to 254
    names = export_formats.unique_file_names([("a" * 64, export_formats.safe_file_name(long, "a" * 64, "jpg"))] * 2
                                             + [("b" * 64, export_formats.safe_file_name(long, "b" * 64, "jpg"))])  # fmt: skip
    assert len({n.rsplit(".", 1)[0] for n in names}) == 3 and all(len(n.encode()) <= 255 for n in names)


def test_images_sharing_a_stem_keep_their_own_label_files_matching_their_names():
    from services.annotation.exports import _file_names

    docs = [
        {"_id": "a" * 64, "sha256": "a" * 64, "filename": "probedup.jpg", "width": W, "height": H},
        {"_id": "b" * 64, "sha256": "b" * 64, "filename": "probedup.png", "width": W, "height": H},
        {"_id": "c" * 64, "sha256": "c" * 64, "filename": "../x/probedup.jpg", "width": W, "height": H},
    ]
    images = _file_names(docs)
    assert [i["file_name"] for i in images] == ["probedup.jpg", f"probedup_{'b' * 12}.png", f"probedup_{'c' * 12}.jpg"]
    boxes = [{"image_id": i["id"], "label_id": "cat", "type": "bbox", "bbox": [1, 1, 4, 4]} for i in images]
    yolo = export_formats.yolo(images, boxes, SEG_LABELS)
    voc = export_formats.voc(images, boxes, SEG_LABELS)
    for image in images:
        stem = image["file_name"].rsplit(".", 1)[0]
        assert yolo[f"labels/{stem}.txt"].startswith("0 ")
        assert ET.fromstring(voc[f"Annotations/{stem}.xml"]).findtext("filename") == image["file_name"]


def test_voc_xml_stays_well_formed_with_control_characters_in_labels_and_names():
    labels = {"l": {"name": "probe\x01ctl\x1f"}}
    images = [{"id": "i", "file_name": "a\x0bb.jpg", "width": W, "height": H}]
    xml = export_formats.voc(images, [{"image_id": "i", "label_id": "l", "type": "bbox", "bbox": [1, 1, 2, 2]}], labels)
    root = ET.fromstring(xml["Annotations/a\x0bb.xml"])
    assert root.findtext("object/name") == "probectl" and root.findtext("filename") == "ab.jpg"


@pytest.mark.parametrize("external", ["²", "١٢", "n02084071", "-3"])
def test_coco_refuses_a_scheme_whose_ids_are_not_ascii_integers(external):
    labels = {**LABELS, "l1": {**LABELS["l1"], "external_ids": {"probescheme": external}}}
    with pytest.raises(InvalidAnnotation) as caught:
        coco_document(IMAGES, ANNOTATIONS, labels, "probescheme")
    assert caught.value.reason == "non_integer_ids" and "not integers" in caught.value.detail
