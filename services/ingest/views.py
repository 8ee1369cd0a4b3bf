"""Thin HTTP handlers: parse, call the service layer, shape the answer."""

from __future__ import annotations

from aiohttp import web

from services.ingest.deps import DEPS, INGEST_SETTINGS
from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.model import ImageOut
from services.ingest.service import ingest
from services.ingest.uploads import read_submission
from shared.problems import Problem, problem_type


async def upload_image(request: web.Request) -> web.Response:
    submission = await read_submission(request, request.app[INGEST_SETTINGS].max_upload_bytes)
    try:
        doc, created = await ingest(request.app[DEPS], submission)
    except ImageRefused as refused:
        raise Problem(
            422,
            "Image refused",
            refused.message,
            type_=problem_type(refused.reason.replace("_", "-")),
            reason=refused.reason,
        ) from None
    return web.json_response(
        ImageOut.of(doc).model_dump(mode="json"),
        status=201 if created else 200,
        headers={"Location": f"/v1/images/{doc.id}"},
    )


async def get_image(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    doc = await request.app[DEPS].repository.get(image_id)
    if doc is None:
        raise Problem(404, "Not Found", f"No image has id {image_id!r}.", type_=problem_type("not-found"))
    return web.json_response(ImageOut.of(doc).model_dump(mode="json"))
