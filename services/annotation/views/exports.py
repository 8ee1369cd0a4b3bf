"""``POST /v1/exports``: a zip with the images and their annotations as COCO, YOLO or Pascal VOC."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.annotation.deps import ANNOTATION_SETTINGS, DEPS
from services.annotation.exports import Format, export_archive, select_images
from services.annotation.views.common import body_as, domain_errors
from shared.problems import Problem
from shared.web.resources import BLOBS

CHUNK = 1024 * 1024


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Format = "coco"
    image_ids: list[str] | None = Field(default=None, description="The images to export")
    dataset: str | None = Field(default=None, description="Or: every image with annotations imported from this dataset")
    id_scheme: str | None = Field(default=None, description="External-id scheme for category ids (e.g. the dataset name)")


@domain_errors
async def create_export(request: web.Request) -> web.StreamResponse:
    payload = await body_as(request, ExportIn)
    limit = request.app[ANNOTATION_SETTINGS].export_max_images
    deps = request.app[DEPS]
    image_ids = await select_images(deps, payload.image_ids, payload.dataset, limit)
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
