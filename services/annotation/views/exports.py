"""``POST /v1/exports``: a zip with the images and their annotations as COCO, YOLO (boxes), YOLO
segmentation (``yolo-seg``: outlines), YOLO pose (``yolo-pose``: boxes with their keypoints) or Pascal VOC
(boxes, and segmentation PNGs for polygons and masks).
An unknown format is refused with 422, the message naming the formats there are."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.annotation.deps import ANNOTATION_SETTINGS, DEPS, SEARCH
from services.annotation.domain.fields import scheme_for
from services.annotation.exports import Format, export_archive, resolved_classes, select_images
from services.annotation.views.common import body_as, domain_errors
from shared.naming import normalize_name
from shared.problems import Problem, problem_type
from shared.web.resources import BLOBS

CHUNK = 1024 * 1024
MAX_CLASSES = 10_000
# A search parameter's value: what a query string can say (a list becomes search's comma-separated list).
SCALARS = (str, int, float, bool)


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Format = Field(
        default="coco",
        description="coco, yolo (boxes), yolo-seg (polygons and masks as outlines), yolo-pose (boxes with their keypoints), "
        "voc, or imagefolder (image classes as folders)",
    )
    image_ids: list[str] | None = Field(default=None, description="The images to export")
    dataset: str | None = Field(default=None, description="Or: every image with annotations imported from this dataset, with that dataset's annotations and those made by hand")
    search: dict[str, Any] | None = Field(
        default=None,
        description='Or: every image a search matches, as GET /v1/search parameters (e.g. {"labels": "person", "min_width": 640})',
    )
    id_scheme: str | None = Field(default=None, description="External-id scheme for category ids (e.g. the dataset name)")
    classes: list[str] | None = Field(
        default=None, min_length=1, max_length=MAX_CLASSES,
        description="Label names: only their annotations, numbered in this order (YOLO from 0, VOC from 1, COCO ids "
        "from 1 without an id_scheme), so exports of different selections (train, val) agree",
    )  # fmt: skip

    @field_validator("classes")
    @classmethod
    def _normalised_classes(cls, classes: list[str] | None) -> list[str] | None:
        """Names as the corpus normalises them; one that is empty or repeats another once normalised is refused."""
        if classes is None:
            return None
        names = [normalize_name(name) for name in classes]
        if not all(names):
            raise ValueError("every class must be a label name with something in it")
        repeated = sorted(name for name, count in Counter(names).items() if count > 1)
        if repeated:
            raise ValueError(f"classes must be distinct once normalised; repeated: {', '.join(repeated[:5])}")
        return names

    @field_validator("search")
    @classmethod
    def _query_string_values(cls, search: dict[str, Any] | None) -> dict[str, Any] | None:
        """Values a query string can carry; an object or a null would otherwise reach search as its Python text."""
        for name, value in (search or {}).items():
            parts = value if isinstance(value, list) else [value]
            if not all(isinstance(part, SCALARS) for part in parts):
                raise ValueError(f"search parameter {name!r} must be text, a number, a boolean or a list of those, not {value!r}")
        return search


def _nothing_to_export(detail: str) -> Problem:
    return Problem(422, "Nothing to export", detail, type_=problem_type("empty-selection"))


async def _selected(request: web.Request, payload: ExportIn, limit: int) -> list[str]:
    """The image ids of exactly one of: the given ids, a dataset, a search (asked of the search service).
    A dataset or search that selects nothing is refused alike (422 ``empty-selection``), not an empty zip."""
    given = {"image_ids": payload.image_ids, "dataset": payload.dataset, "search": payload.search}
    if len(chosen := [name for name, value in given.items() if value is not None and value != []]) > 1:
        raise Problem(422, "Ambiguous selection", f"Give one of 'image_ids', 'dataset' or 'search', not {' and '.join(chosen)}.")
    if payload.search is None:
        image_ids = await select_images(request.app[DEPS], payload.image_ids, payload.dataset, limit)
        if not image_ids:
            raise _nothing_to_export(f"The dataset {payload.dataset!r} has no images with annotations.")
        return image_ids
    image_ids = await request.app[SEARCH].matching_image_ids(payload.search, request.headers.get("Authorization"), limit)
    if not image_ids:
        raise _nothing_to_export("The search matches no images.")
    return image_ids


@domain_errors
async def create_export(request: web.Request) -> web.StreamResponse:
    payload = await body_as(request, ExportIn)
    limit = request.app[ANNOTATION_SETTINGS].export_max_images
    deps = request.app[DEPS]
    classes = await resolved_classes(deps, payload.classes) if payload.classes is not None else None
    image_ids = await _selected(request, payload, limit)
    if len(image_ids) > limit:
        raise Problem(413, "Too many images", f"Export at most {limit} images at once; split the selection.")
    requested = payload.id_scheme or payload.dataset
    scheme = scheme_for(requested) if requested else None  # as imports key them: 'coco.2017' → 'coco_2017'
    path = await export_archive(deps, request.app[BLOBS], payload.format, image_ids, scheme, classes, payload.dataset)
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="export-{payload.format}.zip"',
                "Content-Length": str(path.stat().st_size),
            }
        )
        await response.prepare(request)
        with path.open("rb") as archive:
            while chunk := await asyncio.to_thread(archive.read, CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        path.unlink(missing_ok=True)
