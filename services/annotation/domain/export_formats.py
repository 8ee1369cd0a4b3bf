"""COCO, YOLO (boxes, segmentation and pose), Pascal VOC (boxes and segmentation PNGs) and image folders
(classes) from annotations: pure functions, no I/O.

Inputs are plain dicts: ``images`` ({id, file_name, width, height}),
``annotations`` (stored annotation documents) and ``labels`` (id → {name,
parent, external_ids}). Category ids come from the labels' external ids
under ``id_scheme`` (e.g. the dataset name an import used) when they are
integers, so a COCO import exports with its own category ids; other labels
get the next free numbers. YOLO and VOC number classes by sorted label name;
of them only YOLO pose carries keypoints (elsewhere a keypoints annotation with
a box exports the box); none carries image-level classifications.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from itertools import cycle
from pathlib import PurePosixPath
from typing import Any
from xml.etree import ElementTree as ET

from services.annotation.domain import pose, segmentation
from services.annotation.domain.errors import InvalidExport
from shared import naming
from shared.crowd import is_crowd

GEOMETRIC = ("bbox", "polygon", "mask", "keypoints")
# Characters XML 1.0 forbids (C0 controls but tab, newline and return; lone surrogates; U+FFFE/U+FFFF).
_NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# Extensions an image keeps; any other name gets its format's extension added.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".tif", ".tiff", ".webp", ".bmp"})


def safe_file_name(name: str | None, image_id: str, extension: str) -> str:
    """One path segment to put an image under: the last segment of a stored file name (which may hold a path,
    ``..`` or control characters from older uploads), so no member of an archive points outside its folder.

    The name always has a stem and an image extension, as training tools pair images with label files by
    them (Ultralytics lists only files with an image extension and takes ``labels/<stem>.txt``): a name
    without one gets ``extension`` added (``scan`` → ``scan.jpg``); one that is all extension (``.jpg``)
    or nothing usable becomes ``<image id>.<extension>``.
    """
    safe = naming.safe_file_name(name)
    safe = re.sub(r"\.{2,}", ".", safe).rstrip(". ") if safe else ""
    if not safe or safe.startswith("."):
        return f"{image_id}.{extension}"
    path = PurePosixPath(safe)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return _fitted(safe, f".{extension}")
    return _fitted(path.stem, path.suffix)


# Most filesystems (ext4, APFS, NTFS in UTF-16 units) refuse a name over 255 bytes when the archive is unpacked.
MAX_NAME_BYTES = 255


def _fitted(stem: str, suffix: str) -> str:
    """``stem + suffix``, the stem cut (at a character, without trailing dots) so the name fits in 255 bytes of UTF-8."""
    room = MAX_NAME_BYTES - len(suffix.encode())
    cut = stem.encode()[:room].decode(errors="ignore").rstrip(". ")
    return f"{cut}{suffix}"


def unique_file_names(named: list[tuple[str, str]]) -> list[str]:
    """``(image id, safe file name)`` pairs → names whose stems differ (case aside), in the same order.

    YOLO labels and VOC XML are named by stem, so ``a.jpg`` and ``a.png`` would share one label file: a
    repeated stem gets the image id's first characters (``a_3f2c9e1d0b7a.png``), and the annotation files
    follow the image's new name.
    """
    seen: set[str] = set()
    out = []
    for image_id, name in named:
        path = PurePosixPath(name)
        for candidate in (name, _fitted(path.stem, f"_{image_id[:12]}{path.suffix}"), _fitted(path.stem, f"_{image_id}{path.suffix}")):
            if PurePosixPath(candidate).stem.casefold() not in seen:
                break
        seen.add(PurePosixPath(candidate).stem.casefold())
        out.append(candidate)
    return out


def _xml_text(value: object) -> str:
    """Text XML 1.0 can hold: the characters it forbids (a label with a control character) are dropped."""
    return _NOT_XML.sub("", str(value))


def _integer_id(label: dict, id_scheme: str | None) -> int | None:
    """The label's external id under ``id_scheme`` as a category id; None when it has none. An id that is not
    ASCII digits (``n02084071``, or ``²``, which ``str.isdigit`` accepts but ``int`` refuses) is refused:
    the scheme does not number categories."""
    external = str(label.get("external_ids", {}).get(id_scheme or "", ""))
    if not external:
        return None
    if not (external.isascii() and external.isdigit()):
        raise InvalidExport(
            "non_integer_ids",
            f"The external ids under {id_scheme!r} are not integers (label {label['name']!r} has {external!r}); "
            "COCO category ids must be integers: choose an 'id_scheme' whose ids are, or none to number the categories.",
        )
    return int(external)


def category_ids(label_ids: list[str], labels: dict[str, dict], id_scheme: str | None, classes: list[str] | None = None) -> dict[str, int]:
    """Ids under ``id_scheme`` where the labels have them; the others numbered after those, in ``classes``
    order when given (without a scheme: a class's id is its position + 1 whatever the selection), else by name."""
    ids: dict[str, int] = {}
    for label_id in label_ids:
        external = _integer_id(labels[label_id], id_scheme) if id_scheme else None
        if external is not None and external not in ids.values():
            ids[label_id] = external
    base = max(ids.values(), default=0)
    if classes is not None:
        position = {name: n for n, name in enumerate(classes, start=1)}
        for label_id in label_ids:
            if label_id not in ids:
                ids[label_id] = base + position[labels[label_id]["name"]]
        return ids
    next_id = base + 1
    for label_id in sorted(label_ids, key=lambda i: labels[i]["name"]):
        if label_id not in ids:
            ids[label_id], next_id = next_id, next_id + 1
    return ids


COCO_INFO = {"description": "Exported by Image Corpus"}


class CocoDocument:
    """COCO's ``instances.json`` as text in pieces: :meth:`head` (the images), :meth:`annotations` for each page
    of annotations in turn, :meth:`tail` (the categories). A selection of thousands of images never has its
    annotations, nor the whole document, in memory at once; joined, the pieces are the same bytes as
    ``json.dumps`` of ``{"info", "images", "annotations", "categories"}`` made at once.

    ``label_ids`` are the labels the annotations carry (known up front, so every annotation's category id is);
    annotations are numbered from 1 in the order they are given; only the geometric ones are written.
    """

    def __init__(
        self, images: list[dict], label_ids: list[str], labels: dict[str, dict], id_scheme: str | None, classes: list[str] | None = None
    ) -> None:
        self._images = images
        self._categories = category_ids(label_ids, labels, id_scheme, classes)
        self._category_list = sorted((_coco_category(self._categories[i], labels[i]) for i in label_ids), key=lambda c: c["id"])
        self._image_ids = {image["id"]: n for n, image in enumerate(images, start=1)}
        self._written = 0

    def head(self) -> str:
        images = ", ".join(
            json.dumps({"id": self._image_ids[i["id"]], "file_name": i["file_name"], "width": i["width"], "height": i["height"]})
            for i in self._images
        )
        return f'{{"info": {json.dumps(COCO_INFO)}, "images": [{images}], "annotations": ['

    def annotations(self, page: list[dict]) -> str:
        entries = [
            json.dumps(_coco_annotation(self._written + n, a, self._image_ids[a["image_id"]], self._categories[a["label_id"]]))
            for n, a in enumerate((a for a in page if a["type"] in GEOMETRIC), start=1)
        ]
        text = ", ".join(entries)
        if entries and self._written:
            text = ", " + text
        self._written += len(entries)
        return text

    def tail(self) -> str:
        return f'], "categories": {json.dumps(self._category_list)}}}'


def keypoint_box(points: list[list[float]]) -> list[float]:
    """The bounds ``[x, y, w, h]`` of a keypoints annotation's labelled points (visibility 1 or 2)."""
    xs, ys = [p[0] for p in points if p[2] > 0], [p[1] for p in points if p[2] > 0]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _coco_category(category_id: int, label: dict) -> dict[str, Any]:
    """A COCO category; with the label's keypoint schema, as person_keypoints files carry it."""
    category = {"id": category_id, "name": label["name"], "supercategory": label.get("parent") or ""}
    if label.get("keypoints"):
        category.update(keypoints=label["keypoints"], skeleton=label.get("skeleton") or [])
    return category


def _coco_annotation(n: int, a: dict, image_id: int, category_id: int) -> dict[str, Any]:
    """One COCO annotation. ``segmentation`` only for a polygon or a mask: a box or keypoints have none, and
    an empty list there makes readers fail (Detectron2 refuses it, pycocotools cannot decode it). Keypoints
    without a box get the bounds of their labelled points, and that box's area, for OKS to scale by."""
    bbox = a.get("bbox") or (keypoint_box(a["keypoints"]) if a["type"] == "keypoints" else [0, 0, 0, 0])
    entry: dict[str, Any] = {
        "id": n, "image_id": image_id, "category_id": category_id, "bbox": bbox,
        "area": a.get("area") or bbox[2] * bbox[3], "iscrowd": is_crowd(a),
    }  # fmt: skip
    if a["type"] in ("polygon", "mask"):
        entry["segmentation"] = a["rle"] if a["type"] == "mask" else a["polygon"]
    if a.get("keypoints"):  # a keypoints annotation, or a box, polygon or mask with keypoints (a COCO person)
        entry["keypoints"] = [v for point in a["keypoints"] for v in point]
        entry["num_keypoints"] = sum(1 for point in a["keypoints"] if point[2] > 0)
    if a.get("score") is not None:
        entry["score"] = a["score"]
    return entry


def _class_names(label_ids: Iterable[str], labels: dict[str, dict], classes: list[str] | None = None) -> list[str]:
    """The class order of YOLO (from 0) and VOC (from 1): ``classes`` when the export names them (the same
    for every selection, so a train and a val export agree), else the label names of the objects, sorted."""
    return list(classes) if classes is not None else sorted({labels[i]["name"] for i in label_ids})


class ImageFiles:
    """A per-image export's files, made image by image as the annotations come, so that no more than a page of
    them is in memory: :meth:`head` (what the labels alone say), :meth:`page` for each page of annotations
    in turn, sorted by image (the files of every image whose annotations have all come), then :meth:`rest`
    (the last image's, those of the images without any, and the files listing images). Only the annotations
    the format takes (:meth:`takes`) count; ``label_ids`` are their labels, known up front.
    :meth:`at_once` makes the same files from a whole list of annotations."""

    def __init__(self, images: list[dict], label_ids: list[str], labels: dict[str, dict], classes: list[str] | None = None) -> None:
        self.images, self.labels = images, labels
        self._by_id = {image["id"]: image for image in images}
        self._held_id: str | None = None
        self._held: list[dict] = []
        self._done: set[str] = set()

    @staticmethod
    def takes(a: dict) -> bool:
        return bool(a.get("bbox"))

    def head(self) -> dict[str, str | bytes]:
        return {}

    def image_files(self, image: dict, objects: list[dict]) -> dict[str, str | bytes]:
        raise NotImplementedError

    def tail(self) -> dict[str, str | bytes]:
        return {}

    def page(self, annotations: list[dict]) -> dict[str, str | bytes]:
        files: dict[str, str | bytes] = {}
        for a in annotations:
            if a["image_id"] != self._held_id:
                files.update(self._flush())
                self._held_id = a["image_id"]
            if self.takes(a):
                self._held.append(a)
        return files

    def rest(self) -> dict[str, str | bytes]:
        files = self._flush()
        for image in self.images:
            if image["id"] not in self._done:
                files.update(self.image_files(image, []))
        return files | self.tail()

    def _flush(self) -> dict[str, str | bytes]:
        if self._held_id is None:
            return {}
        image_id, objects = self._held_id, self._held
        self._held_id, self._held = None, []
        self._done.add(image_id)
        return self.image_files(self._by_id[image_id], objects)

    @classmethod
    def at_once(cls, images: list[dict], annotations: list[dict], labels: dict[str, dict], classes: list[str] | None = None) -> Any:
        """Every file, made from ``annotations`` (in any order; each image's in the order given)."""
        objects = [a for a in annotations if cls.takes(a)]
        return cls(images, sorted({a["label_id"] for a in objects}), labels, classes).whole(objects)

    def whole(self, objects: list[dict]) -> dict[str, str | bytes]:
        by_image: dict[str, list[dict]] = {image["id"]: [] for image in self.images}
        for a in objects:
            by_image[a["image_id"]].append(a)
        made = self.head()
        for image in self.images:
            made.update(self.image_files(image, by_image[image["id"]]))
        return made | self.tail()


def _stem(image: dict) -> str:
    return PurePosixPath(image["file_name"]).stem


def _box_values(bbox: list[float], width: int, height: int) -> str:
    x, y, w, h = bbox
    return f"{(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}"


def _box_coordinates(a: dict, width: int, height: int) -> list[str]:
    return [_box_values(a["bbox"], width, height)]


def pose_coordinates(a: dict, width: int, height: int, count: int) -> list[str]:
    """``cx cy w h px1 py1 v1 ... pxK pyK vK``: the object's box (a keypoints annotation without one gets the
    bounds of its labelled points, as in COCO) and its ``count`` points (:func:`pose.keypoint_values`)."""
    bbox = a.get("bbox") or keypoint_box(a["keypoints"])
    return [f"{_box_values(bbox, width, height)} {pose.keypoint_values(a.get('keypoints'), count, width, height)}"]


def _outline_coordinates(a: dict, width: int, height: int) -> list[str]:
    """``x1 y1 ... xn yn``: the annotation's rings bridged into one outline, normalised and clamped to [0, 1];
    nothing for an annotation without an outline. A polygon whose rings overlap or nest is outlined from
    the union of its pixels (what COCO readers fill), as a mask is."""
    if not segmentation.has_shape(a):
        return []
    polygon = a.get("polygon")
    if polygon and not segmentation.rings_overlap(polygon, height, width):
        rings = polygon  # the vertices as drawn
    else:
        rings = segmentation.rings_with_holes(segmentation.mask_of(a, height, width))
    outline = segmentation.bridged(rings)
    if not outline:
        return []
    return [" ".join(f"{min(max(v / size, 0.0), 1.0):.6f}" for v, size in zip(outline, cycle((width, height))))]


class YoloFiles(ImageFiles):
    """YOLO detection: ``classes.txt``, ``data.yaml`` and one ``labels/<stem>.txt`` per image, a ``class cx cy w h``
    line (normalised) per box. Subclasses write other coordinates (:meth:`coordinates`, one line per string it
    gives) and, with :attr:`keypoints` (a pose dataset's names), data.yaml says ``kpt_shape``, ``flip_idx``
    and ``kpt_names``."""

    keypoints: list[str] | None = None

    def __init__(self, images: list[dict], label_ids: list[str], labels: dict[str, dict], classes: list[str] | None = None) -> None:
        super().__init__(images, label_ids, labels, classes)
        self.names = _class_names(label_ids, labels, classes)
        self._index = {name: n for n, name in enumerate(self.names)}

    def coordinates(self, a: dict, width: int, height: int) -> list[str]:
        return [_box_values(a["bbox"], width, height)]

    def head(self) -> dict[str, str | bytes]:
        names = self.names
        yaml = "path: .\ntrain: images\nval: images\n" + _pose_yaml(self.keypoints, len(names)) + "names:\n" + "".join(
            f"  {n}: {json.dumps(name, ensure_ascii=False)}\n" for n, name in enumerate(names)  # as classes.txt spells it
        )
        return {"classes.txt": "".join(f"{name}\n" for name in names), "data.yaml": yaml}

    def image_files(self, image: dict, objects: list[dict]) -> dict[str, str | bytes]:
        return {
            f"labels/{_stem(image)}.txt": "".join(
                f"{self._index[self.labels[a['label_id']]['name']]} {line}\n"
                for a in objects
                for line in self.coordinates(a, image["width"], image["height"])
            )
        }


def _pose_yaml(keypoints: list[str] | None, classes: int) -> str:
    """data.yaml's keypoint lines: ``kpt_shape``, ``flip_idx`` (:func:`pose.flip_idx`) and, per class, the
    keypoints' names (``kpt_names``; every class has the dataset's); nothing for a dataset without keypoints."""
    if keypoints is None:
        return ""
    spelled = json.dumps(keypoints, ensure_ascii=False)
    return (
        f"kpt_shape: [{len(keypoints)}, 3]\nflip_idx: {json.dumps(pose.flip_idx(keypoints))}\n"
        + "kpt_names:\n" + "".join(f"  {n}: {spelled}\n" for n in range(classes))
    )


class YoloSegFiles(YoloFiles):
    """YOLO segmentation (Ultralytics): ``class x1 y1 x2 y2 ... xn yn`` per object, normalised, 6 decimals.

    One line per object: a polygon in several parts, or a mask's contours traced from its pixels (the
    edges of its parts and of its holes, :func:`segmentation.rings_with_holes`), are bridged into one
    outline (:func:`segmentation.bridged`), as Ultralytics' COCO converter does; filled as YOLO fills it
    (even-odd), the holes stay empty. A polygon whose parts overlap or nest is traced from their union,
    so the shared pixels are not filled as a hole. Boxes and keypoints without an
    outline are left out. ``classes.txt`` and ``data.yaml`` are those of :class:`YoloFiles` for the same
    selection, so class indices agree between the two.
    """

    def coordinates(self, a: dict, width: int, height: int) -> list[str]:
        return _outline_coordinates(a, width, height)


class YoloPoseFiles(YoloFiles):
    """YOLO pose (Ultralytics): ``class cx cy w h px1 py1 v1 ... pxK pyK vK`` per object, normalised, 6 decimals,
    visibility as COCO's (0 not labelled, 1 hidden, 2 visible), an unlabelled point ``0 0 0``.

    Every object with a box or points is a line: a box, polygon or mask by its box, with its points or, when
    it has none, ``0 0 0`` for each; a keypoints annotation without a box by the bounds of its labelled points,
    as the COCO export boxes it. K is the one keypoint schema of the objects' labels
    (:func:`pose.schema_of`, which refuses two schemas, or none; each image's objects are checked against it,
    :func:`pose.check_points`); data.yaml says ``kpt_shape: [K, 3]`` and ``flip_idx``. Class numbers,
    ``classes.txt`` and file names are those of :class:`YoloFiles`. Ingest's YOLO reader, given this
    data.yaml, reads the lines back as boxes carrying their points.
    """

    def __init__(self, images: list[dict], label_ids: list[str], labels: dict[str, dict], classes: list[str] | None = None) -> None:
        super().__init__(images, label_ids, labels, classes)
        self.keypoints = pose.schema_of(label_ids, labels)

    @staticmethod
    def takes(a: dict) -> bool:
        return bool(a.get("bbox")) or a["type"] == "keypoints"

    def coordinates(self, a: dict, width: int, height: int) -> list[str]:
        return pose_coordinates(a, width, height, len(self.keypoints or ()))

    def image_files(self, image: dict, objects: list[dict]) -> dict[str, str | bytes]:
        pose.check_points(objects, self.labels, len(self.keypoints or ()))
        return super().image_files(image, objects)


class VocFiles(ImageFiles):
    """Pascal VOC: ``Annotations/<stem>.xml`` per image (boxes as xmin/ymin/xmax/ymax pixels), ``labelmap.txt``
    and, for each image with polygons or masks, VOC's segmentation PNGs.

    ``SegmentationClass/<stem>.png`` holds each object's class index: 1-based in the sorted label names,
    the order ``labelmap.txt`` lists them in after ``background`` (CVAT's ``name:r,g,b::`` lines).
    ``SegmentationObject/<stem>.png`` holds each object's position in the XML's ``<object>`` list (from 1),
    and the XML says ``<segmented>1</segmented>``. Both are palette PNGs of the image's size with the VOC
    colour map, 0 for background. Objects are painted in ``<object>`` order, so where two overlap the later
    one covers the earlier in both PNGs; a box-only object in a segmented image has no pixels. VOC's 255
    (void) outline around each object is not drawn. ``ImageSets/Segmentation/default.txt`` lists the
    images that have PNGs; images with boxes only have their XML alone.
    """

    def __init__(self, images: list[dict], label_ids: list[str], labels: dict[str, dict], classes: list[str] | None = None) -> None:
        super().__init__(images, label_ids, labels, classes)
        self.names = _class_names(label_ids, labels, classes)
        self._index = {name: n for n, name in enumerate(self.names, start=1)}
        self._segmented: set[str] = set()

    def head(self) -> dict[str, str | bytes]:
        return {"labelmap.txt": _labelmap(self.names)}

    def image_files(self, image: dict, objects: list[dict]) -> dict[str, str | bytes]:
        stem, shaped = _stem(image), any(segmentation.has_shape(a) for a in objects)
        files: dict[str, str | bytes] = {f"Annotations/{stem}.xml": _voc_xml(image, objects, self.labels, shaped)}
        if shaped:
            pngs = _voc_pngs(image, objects, [self._index[self.labels[a["label_id"]]["name"]] for a in objects])
            files[f"SegmentationClass/{stem}.png"], files[f"SegmentationObject/{stem}.png"] = pngs
            self._segmented.add(image["id"])
        return files

    def tail(self) -> dict[str, str | bytes]:
        segmented = [_stem(image) for image in self.images if image["id"] in self._segmented]
        return {"ImageSets/Segmentation/default.txt": "".join(f"{stem}\n" for stem in segmented)} if segmented else {}


yolo, yolo_seg, yolo_pose, voc = YoloFiles.at_once, YoloSegFiles.at_once, YoloPoseFiles.at_once, VocFiles.at_once


def _labelmap(names: list[str]) -> str:
    lines = [f"{name}:{','.join(map(str, segmentation.voc_colour(n)))}::\n" for n, name in enumerate(["background", *names])]
    return "# label:color_rgb:parts:actions\n" + "".join(lines)


# Channels of a Pillow mode, for VOC's <depth> (a palette image is a colour image).
CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "F": 1, "LA": 2, "La": 2, "P": 3, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
            "PA": 4, "RGBA": 4, "RGBa": 4, "CMYK": 4}  # fmt: skip


def voc_box(bbox: list[float]) -> tuple[int, int, int, int]:
    """A COCO box ``[x, y, w, h]`` (pixel edges, 0-based) as VOC's ``xmin, ymin, xmax, ymax``: 1-based pixel
    numbers, both ends included, as the devkit (and this project's VOC import) reads them. ``[0, 0, 50, 40]``
    is pixels 1..50 × 1..40; a box under a pixel wide still covers the one pixel it lies on."""
    x, y, w, h = bbox
    xmin, ymin = round(x) + 1, round(y) + 1
    return xmin, ymin, max(xmin, round(x + w)), max(ymin, round(y + h))


def _voc_xml(image: dict, objects: list[dict], labels: dict[str, dict], segmented: bool) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = _xml_text(image["file_name"])
    size = ET.SubElement(root, "size")
    for tag, value in (("width", image["width"]), ("height", image["height"]), ("depth", CHANNELS.get(image.get("mode") or "", 3))):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = str(int(segmented))
    for a in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = _xml_text(labels[a["label_id"]]["name"])
        for tag, value in _voc_flags(a).items():
            ET.SubElement(obj, tag).text = _xml_text(value)
        box = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), voc_box(a["bbox"]), strict=True):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def _voc_flags(a: dict) -> dict[str, str]:
    """An object's ``pose``, ``truncated``, ``difficult`` and ``occluded``, in the devkit's order, from the
    attributes a VOC import keeps; ``difficult`` is always written (0 unless marked), as VOC's evaluation
    leaves difficult objects out of both the hits and the misses."""
    attributes = a.get("attributes") or {}
    flags = {"pose": attributes.get("pose")} if isinstance(attributes.get("pose"), str) else {}
    for tag in ("truncated", "difficult", "occluded"):
        value = attributes.get(tag)
        if value in (0, 1, True, False):
            flags[tag] = str(int(value))
        elif tag == "difficult":
            flags[tag] = "0"
    return flags


def _voc_pngs(image: dict, objects: list[dict], classes: list[int]) -> tuple[bytes, bytes]:
    """The SegmentationClass and SegmentationObject PNGs of one image's objects (with their class indices)."""
    if len(objects) > segmentation.MAX_INDEX or max(classes) > segmentation.MAX_INDEX:
        raise InvalidExport(
            "voc_too_many",
            f"Pascal VOC segmentation PNGs hold at most {segmentation.MAX_INDEX} classes and {segmentation.MAX_INDEX} "
            f"objects per image; {image['file_name']} has {len(objects)} objects, with class indices up to {max(classes)}. "
            "Export fewer labels, or use COCO or yolo-seg.",
        )
    height, width = image["height"], image["width"]
    shaped = [
        (n, cls, segmentation.mask_of(a, height, width))
        for n, (a, cls) in enumerate(zip(objects, classes, strict=True), start=1)
        if segmentation.has_shape(a)
    ]
    class_image = segmentation.painted(((cls, mask) for _, cls, mask in shaped), height, width)
    object_image = segmentation.painted(((n, mask) for n, _, mask in shaped), height, width)
    return segmentation.palette_png(class_image), segmentation.palette_png(object_image)


def _folder_name(name: str) -> str:
    """A label name as one path segment, told apart from every other name: ``%``, ``/`` and ``\\`` are
    percent-encoded, as is a leading dot (never ``.`` or ``..``)."""
    safe = name.replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")
    return f"%2E{safe[1:]}" if safe.startswith(".") else safe


class ImageFolderFiles(ImageFiles):
    """Image classification as torchvision's ``ImageFolder`` and Ultralytics' classify datasets read it.

    Each image is placed under ``<class>/<file name>`` for every image-level classification it has (an image
    with two classes is in two folders; ``labels.csv`` lists every ``path,class`` pair). ``classes.txt``
    lists the folders sorted, which is the order ``ImageFolder`` numbers them in (a folder is the class
    name, with ``%``, ``/``, ``\\`` and a leading dot percent-encoded). Images without a classification are
    left out and named in ``unclassified.txt``. :attr:`paths` gives, per image id, the member names its
    bytes go under, once :meth:`rest` has been made.
    """

    def __init__(self, images: list[dict], label_ids: list[str], labels: dict[str, dict], classes: list[str] | None = None) -> None:
        if not label_ids:
            raise InvalidExport(
                "no_classifications",
                f"None of the {len(images)} selected image(s) has an image-level classification to make folders from; "
                "use coco, yolo, yolo-seg or voc for boxes and outlines.",
            )
        super().__init__(images, label_ids, labels, classes)
        self._folders = sorted({_folder_name(name) for name in _class_names(label_ids, labels)})
        self._classes: dict[str, list[str]] = {}
        self.paths: dict[str, list[str]] = {}

    @staticmethod
    def takes(a: dict) -> bool:
        return a["type"] == "classification"

    def image_files(self, image: dict, objects: list[dict]) -> dict[str, str | bytes]:
        classes = sorted({self.labels[a["label_id"]]["name"] for a in objects})
        self._classes[image["id"]] = classes
        self.paths[image["id"]] = [f"{_folder_name(name)}/{image['file_name']}" for name in classes]
        return {}

    def tail(self) -> dict[str, str | bytes]:
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        writer.writerow(["path", "class"])
        for image in self.images:
            writer.writerows(zip(self.paths[image["id"]], self._classes[image["id"]]))
        files: dict[str, str | bytes] = {"classes.txt": "".join(f"{folder}\n" for folder in self._folders), "labels.csv": rows.getvalue()}
        unclassified = [image["file_name"] for image in self.images if not self.paths[image["id"]]]
        if unclassified:
            files["unclassified.txt"] = "".join(f"{name}\n" for name in unclassified)
        return files


def image_folder(images: list[dict], annotations: list[dict], labels: dict[str, dict]) -> tuple[dict[str, str | bytes], dict[str, list[str]]]:
    """:class:`ImageFolderFiles` at once: the text files and, per image id, the member names its bytes go under."""
    objects = [a for a in annotations if ImageFolderFiles.takes(a)]
    files = ImageFolderFiles(images, sorted({a["label_id"] for a in objects}), labels)
    return files.whole(objects), files.paths
