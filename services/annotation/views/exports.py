"""``POST /v1/exports``: a zip with the images and their annotations as COCO, YOLO (boxes), YOLO
segmentation (``yolo-seg``: outlines) or Pascal VOC (boxes, and segmentation PNGs for polygons and masks).
An unknown format is refused with 422, the message naming the formats there are."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.annotation.deps import ANNOTATION_SETTINGS, DEPS, SEARCH
from services.annotation.exports import Format, export_archive, select_images
from services.annotation.views.common import body_as, domain_errors
from shared.problems import Problem, problem_type
from shared.web.resources import BLOBS

CHUNK = 1024 * 1024


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Format = Field(default="coco", description="coco, yolo (boxes), yolo-seg (polygons and masks as outlines), voc, or imagefolder (image classes as folders)")
    image_ids: list[str] | None = Field(default=None, description="The images to export")
    dataset: str | None = Field(default=None, description="Or: every image with annotations imported from this dataset")
    search: dict[str, Any] | None = Field(
        default=None,
        description='Or: every image a search matches, as GET /v1/search parameters (e.g. {"labels": "person", "min_width": 640})',
    )
    id_scheme: str | None = Field(default=None, description="External-id scheme for category ids (e.g. the dataset name)")


async def _selected(request: web.Request, payload: ExportIn, limit: int) -> list[str]:
    """The image ids of exactly one of: the given ids, a dataset, a search (asked of the search service)."""
    given = {"image_ids": payload.image_ids, "dataset": payload.dataset, "search": payload.search}
    if len(chosen := [name for name, value in given.items() if value is not None and value != []]) > 1:
        raise Problem(422, "Ambiguous selection", f"Give one of 'image_ids', 'dataset' or 'search', not {' and '.join(chosen)}.")
    if payload.search is None:
        return await select_images(request.app[DEPS], payload.image_ids, payload.dataset, limit)
    image_ids = await request.app[SEARCH].matching_image_ids(payload.search, request.headers.get("Authorization"), limit)
    if not image_ids:
        raise Problem(422, "Nothing to export", "The search matches no images.", type_=problem_type("empty-selection"))
    return image_ids


@domain_errors
async def create_export(request: web.Request) -> web.StreamResponse:
    payload = await body_as(request, ExportIn)
    limit = request.app[ANNOTATION_SETTINGS].export_max_images
    deps = request.app[DEPS]
    image_ids = await _selected(request, payload, limit)
    if len(image_ids) > limit:
        raise Problem(413, "Too many images", f"Export at most {limit} images at once; split the selection.")
    scheme = payload.id_scheme or payload.dataset
    path = await export_archive(deps, request.app[BLOBS], payload.format, image_ids, scheme)
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
