"""``annotations.imported`` — a dataset import delivers the annotations of one image.

Produced by ingest when it imports COCO, YOLO, Pascal VOC or a folder tree
(the parent folder is an image-level class); consumed by annotation, which
creates labels from ``categories`` and annotations keyed on
``(dataset, source_id)``, so a re-run import creates no duplicates.

Geometry is in pixels of the stored image: ``bbox`` is ``[x, y, width, height]``
(COCO order), ``polygon`` a list of rings each ``[x1, y1, x2, y2, ...]``,
``rle`` a COCO RLE ``{"size": [height, width], "counts": str}`` (compressed,
as pycocotools writes it), ``keypoints`` a list of ``[x, y, visibility]`` (on a
box, polygon or mask too: a COCO person is all of them at once). A category
may carry a keypoint schema (``keypoints`` names, ``skeleton`` edges).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from shared.events.envelope import EventData
from shared.keypoint_schema import checked_schema

AnnotationType = Literal["bbox", "polygon", "mask", "keypoints", "classification"]


class ImportedCategory(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    external_id: str | None = None  # e.g. the COCO category id, a WordNet id
    parent: str | None = None  # e.g. the COCO supercategory
    # COCO's keypoint schema (shared/keypoint_schema.py): names in order, edges as pairs counted from 1.
    keypoints: list[str] | None = None
    skeleton: list[list[int]] | None = None

    @model_validator(mode="after")
    def _schema(self) -> ImportedCategory:
        if self.keypoints is not None or self.skeleton:
            checked_schema(self.keypoints, self.skeleton)
        return self


class ImportedAnnotation(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_id: str  # the annotation's id in the dataset (COCO annotation id, "<file>:<line>", ...)
    type: AnnotationType
    label: str
    bbox: list[float] | None = None
    polygon: list[list[float]] | None = None
    rle: dict[str, Any] | None = None
    keypoints: list[list[float]] | None = None
    score: float | None = None
    attributes: dict[str, Any] = {}


class AnnotationsImported(EventData):
    event_type = "annotations.imported"
    event_schema = 1

    import_id: str
    dataset: str
    image_id: str
    image_width: int
    image_height: int
    categories: list[ImportedCategory] = []
    annotations: list[ImportedAnnotation] = []
