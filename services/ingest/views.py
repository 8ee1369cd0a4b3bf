"""Thin HTTP handlers for images: parse, call the pipeline, shape the answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field

from services.ingest import results
from services.ingest.deps import DEPS, FETCHER, INGEST_SETTINGS
from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.model import ImageOut, Origin
from services.ingest.fetching import ingest_url
from services.ingest.rejecting import record_rejection
from services.ingest.batching import GroupIngest
from services.ingest.service import Submission, ingest
from services.ingest.uploads import BatchPart, FileOverCap, read_batch, read_submission
from shared.auth import PRINCIPAL
from shared.naming import normalize_names
from shared.problems import Problem, problem_type
from shared.web import idempotency
from shared.web.bodies import body_as

M = TypeVar("M", bound=BaseModel)


async def json_body(request: web.Request, model: type[M], example: str) -> M:
    """The request's JSON as ``model``; else 422 ``invalid-body`` listing the errors and showing ``example``,
    as every service answers (it was a 400 with pydantic's text and its documentation links)."""
    return await body_as(request, model, example)


def refusal_problem(refused: ImageRefused) -> Problem:
    return Problem(422, "Image refused", refused.message, type_=problem_type(refused.reason.replace("_", "-")), reason=refused.reason)


async def upload_image(request: web.Request) -> web.Response:
    async def read() -> Submission:
        return await read_submission(request, request.app[INGEST_SETTINGS].max_upload_bytes, request[PRINCIPAL].user_id)

    async def produce():
        try:
            submission = await read()
        except FileOverCap as over:  # refused before it was read whole: recorded like every other refusal
            refused = ImageRefused("too_large", over.detail or over.title)
            await record_rejection(request.app[DEPS], over.submission, refused, size=over.received)
            raise
        try:
            outcome = await ingest(request.app[DEPS], submission)
        except ImageRefused as refused:
            raise refusal_problem(refused) from None
        body = ImageOut.of(outcome.doc).model_dump(mode="json")
        return (201 if outcome.created else 200), body, {"Location": f"/v1/images/{outcome.doc.id}"}

    return await idempotency.respond(request, "upload", produce, read)


async def upload_batch(request: web.Request) -> web.Response:
    settings, uploader = request.app[INGEST_SETTINGS], request[PRINCIPAL].user_id

    def parts() -> AsyncIterator[BatchPart]:
        return read_batch(request, max_file_bytes=settings.max_upload_bytes, max_total_bytes=settings.max_batch_bytes, uploader=uploader)

    async def reread() -> None:
        async for _ in parts():
            pass

    async def produce():
        deps = request.app[DEPS]
        group = GroupIngest(deps, group_size=settings.store_group, probing=settings.concurrency)
        items: list[results.ItemResult | tuple[BatchPart, asyncio.Future]] = []
        body_error: Problem | None = None
        try:
            async for part in parts():
                if part.too_large is None:
                    items.append((part, await group.add(part.submission)))
                    continue
                refused = ImageRefused("too_large", f"The file is larger than the limit of {part.too_large:,} bytes.")
                await record_rejection(deps, part.submission, refused, size=part.size)
                items.append(results.refused(part.index, refused, status=413, filename=part.filename))
        except Problem as problem:  # the body went wrong after its first files: they are answered for below
            body_error = problem
        finally:
            await group.finish()
        # Every item's outcome is taken, also after one failed: an exception left in a future is logged
        # as never retrieved when the future is collected, long after this request's answer.
        outcomes = await asyncio.gather(*(_item_result(item) for item in items), return_exceptions=True)
        if failed := next((o for o in outcomes if isinstance(o, BaseException)), None):
            raise failed
        if body_error is not None:
            raise _with_results(body_error, outcomes)
        return 200, results.summary(outcomes), {}

    return await idempotency.respond(request, "batch", produce, reread)


def _with_results(problem: Problem, outcomes: list[results.ItemResult]) -> Problem:
    """The request's problem, carrying the results of the files read before it (stored or refused for good:
    the client must not take the error to mean that nothing happened)."""
    if outcomes:
        problem.detail = f"{problem.detail} The {len(outcomes)} file(s) before it were processed; see 'items'."
        problem.extensions.update(results.summary(outcomes))
    return problem


async def _item_result(item: results.ItemResult | tuple[BatchPart, asyncio.Future]) -> results.ItemResult:
    if isinstance(item, results.ItemResult):
        return item
    part, future = item
    outcome = await future
    if isinstance(outcome, ImageRefused):
        return results.refused(part.index, outcome, filename=part.filename)
    return results.stored(part.index, outcome, filename=part.filename)


class FetchRequest(BaseModel):
    urls: list[str] = Field(min_length=1, max_length=100)
    tags: list[str] = []
    sha256: list[Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None] | None = Field(
        default=None, description="expected checksums (64 hex digits), one per URL, null where unknown"
    )
    dataset: str | None = None
    licence: str | None = None
    author: str | None = None


def _expected(checksums: list[str | None] | None, index: int) -> str | None:
    """The checksum given for the URL at ``index`` (hex in either case), or None."""
    given = checksums[index] if checksums else None
    return given.lower() if given else None


async def fetch_images(request: web.Request) -> web.Response:
    async def produce():
        body = await json_body(request, FetchRequest, '{"urls": ["https://..."]}')
        if body.sha256 is not None and len(body.sha256) != len(body.urls):
            raise Problem(400, "Bad Request", "Give one sha256 per URL (null where unknown).")
        deps, fetcher = request.app[DEPS], request.app[FETCHER]
        slots = asyncio.Semaphore(request.app[INGEST_SETTINGS].concurrency)
        origin = Origin(kind="url", dataset=body.dataset, licence=body.licence, author=body.author)

        async def one(index: int, url: str) -> results.ItemResult:
            template = Submission(
                b"",
                tags=tuple(normalize_names(body.tags)),
                origin=origin,
                uploader=request[PRINCIPAL].user_id,
                expected_sha256=_expected(body.sha256, index),
            )
            async with slots:
                try:
                    return results.stored(index, await ingest_url(deps, fetcher, url, template), url=url)
                except ImageRefused as refused:
                    return results.refused(index, refused, url=url)

        items = await asyncio.gather(*(one(i, url) for i, url in enumerate(body.urls)))
        return 200, results.summary(list(items)), {}

    return await idempotency.respond(request, "fetch", produce)


async def get_image(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    doc = await request.app[DEPS].repository.get(image_id)
    if doc is None:
        raise Problem(404, "Not Found", f"No image has id {image_id!r}.", type_=problem_type("not-found"))
    return web.json_response(ImageOut.of(doc).model_dump(mode="json"))
