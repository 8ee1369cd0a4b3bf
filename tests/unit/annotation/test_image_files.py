"""YOLO (boxes, outlines, pose), VOC and ImageFolder files made a page of annotations at a time
(:class:`ImageFiles`, as the export reads them, sorted by image) are the files made at once from the
whole list, byte for byte, however the annotations are paged: images without annotations, an image's
annotations split across pages, segmentation PNGs, and only the classes asked for."""

from __future__ import annotations

import pytest

from services.annotation.domain import export_formats
from tests.unit.annotation import test_export_formats as seg, test_yolo_pose as poses

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

IMAGES = [*seg.SEG_IMAGES, {"id": "e", "file_name": "empty.jpg", "width": seg.W, "height": seg.H}]  # "e" has nothing
TAG = {"image_id": "b", "label_id": "dog", "type": "classification"}
SECOND = {**seg.BOX, "label_id": "dog", "bbox": [40, 30, 6, 6]}
ANNOTATIONS = [seg.BOX, seg.SQUARE, seg.BOX_ONLY, TAG, seg.CIRCLE, SECOND, {**TAG, "image_id": "s", "label_id": "cat"}]
LABELS = {"cat": {"name": "cat"}, "dog": {"name": "dog"}, "bird": {"name": "bird"}}
POSE_IMAGES = [*poses.IMAGES, {"id": "i3", "file_name": "c.jpg", "width": 10, "height": 10}]
POSES = [poses.BOXED, poses.NO_POINTS, poses.POINTS_ONLY, poses.CAR, poses.CLASS_ONLY]
FORMATS = {
    "yolo": (export_formats.YoloFiles, IMAGES, ANNOTATIONS, LABELS),
    "yolo-seg": (export_formats.YoloSegFiles, IMAGES, ANNOTATIONS, LABELS),
    "voc": (export_formats.VocFiles, IMAGES, ANNOTATIONS, LABELS),
    "imagefolder": (export_formats.ImageFolderFiles, IMAGES, ANNOTATIONS, LABELS),
    "yolo-pose": (export_formats.YoloPoseFiles, POSE_IMAGES, POSES, poses.LABELS),
}


def _paged(kind, images, annotations, labels, classes, page):
    """As the export makes them: the labels of what the format takes up front, then the annotations sorted by
    image (each image's in their own order), ``page`` at a time."""
    if classes is not None:
        annotations = [a for a in annotations if labels[a["label_id"]]["name"] in classes]
    used = sorted({a["label_id"] for a in annotations if kind.takes(a)})
    ordered = sorted(annotations, key=lambda a: a["image_id"])
    files = kind(images, used, labels, classes)
    made = files.head()
    for start in range(0, len(ordered), page):
        made.update(files.page(ordered[start : start + page]))
    return made | files.rest(), getattr(files, "paths", None)


def _at_once(kind, images, annotations, labels, classes):
    if classes is not None:
        annotations = [a for a in annotations if labels[a["label_id"]]["name"] in classes]
    if kind is export_formats.ImageFolderFiles:
        return export_formats.image_folder(images, annotations, labels)
    return kind.at_once(images, annotations, labels, classes), None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("classes", [None, "some"])
def test_the_files_are_the_same_however_the_annotations_are_paged(fmt, classes):
    kind, images, annotations, labels = FORMATS[fmt]
    if classes:
        classes = ["walker", "car", "nobody"] if fmt == "yolo-pose" else ["dog", "bird"]
    whole = _at_once(kind, images, annotations, labels, classes)
    assert len(whole[0]) >= 3  # something to compare: head or tail files and each image's
    for page in range(1, len(annotations) + 1):
        assert _paged(kind, images, annotations, labels, classes, page) == whole


def test_every_image_has_its_files_when_none_of_its_annotations_came():
    voc = export_formats.VocFiles(IMAGES, ["cat"], LABELS)
    assert voc.page([seg.BOX]) == {}  # seg.jpg's annotations may go on in the next page
    assert sorted(voc.rest()) == ["Annotations/box.xml", "Annotations/empty.xml", "Annotations/seg.xml"]
    yolo = export_formats.YoloFiles(IMAGES, ["cat", "dog"], LABELS)
    assert yolo.page([seg.BOX, seg.BOX_ONLY]) == {"labels/seg.txt": "0 0.054688 0.072917 0.078125 0.104167\n"}
    assert yolo.rest() == {"labels/box.txt": "1 0.093750 0.125000 0.125000 0.166667\n", "labels/empty.txt": ""}
