"""Annotation endpoints: create (one and bulk), read, update, delete, history, revert, as_of."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, Field

from services.annotation import service
from services.annotation.deps import ANNOTATION_SETTINGS, DEPS
from services.annotation.domain.errors import AnnotationError, InvalidAnnotation, NotFound
from services.annotation.domain.model import MAX_VERSION, AnnotationIn, AnnotationPatch, HistoryEntryOut
from services.annotation.views.common import (
    annotation_out, body_as, decode_cursor, domain_errors, etag, if_match, limit_of, next_cursor,
)  # fmt: skip
from shared.auth import PRINCIPAL
from shared.problems import Problem
from shared.readmodels import AnnotationOut
from shared.web import idempotency
from shared.web.responses import json_response


class BulkIn(BaseModel):
    """Many new annotations; each gets its own result."""

    items: list[AnnotationIn] = Field(min_length=1)


class BulkChange(BaseModel):
    """One change in a bulk update: the annotation, the version it was read at, and the fields (or a delete)."""

    id: str
    version: int = Field(ge=1, le=MAX_VERSION, description="The version you read (as If-Match)")
    patch: AnnotationPatch | None = None
    delete: bool = False


class BulkUpdateIn(BaseModel):
    items: list[BulkChange] = Field(min_length=1)


class RevertIn(BaseModel):
    version: int = Field(ge=1, le=MAX_VERSION)  # beyond 64 bits no version exists, nor can MongoDB be asked


async def _one(request: web.Request, doc: dict, status: int = 200, label: str | None = None) -> web.Response:
    [body] = [AnnotationOut.of(doc, label).model_dump(mode="json")] if label else await annotation_out(request, [doc])
    headers = {"ETag": etag(doc["version"]), "Location": f"/v1/annotations/{doc['_id']}"}
    return json_response(body, status=status, headers=headers)


@idempotency.idempotent("annotation-create")
@domain_errors
async def create_annotation(request: web.Request) -> web.Response:
    payload = await body_as(request, AnnotationIn)
    deps = request.app[DEPS]
    [result] = await service.create_many(deps, request[PRINCIPAL].user_id, [payload.model_dump()], seed=idempotency.request_seed(request))
    if result["status"] != 201:
        raise InvalidAnnotation(result["reason"], result["detail"])
    return await _one(request, result["doc"], 201, result["label"])


def _within_bulk_limit(request: web.Request, count: int) -> None:
    limit = request.app[ANNOTATION_SETTINGS].bulk_max_items
    if count > limit:
        raise Problem(413, "Too many items", f"Send at most {limit} items per request (CORPUS_BULK_MAX_ITEMS); split the batch.")


@idempotency.idempotent("annotation-bulk")
@domain_errors
async def bulk_create(request: web.Request) -> web.Response:
    payload = await body_as(request, BulkIn)
    _within_bulk_limit(request, len(payload.items))
    results = await service.create_many(
        request.app[DEPS], request[PRINCIPAL].user_id, [i.model_dump() for i in payload.items], seed=idempotency.request_seed(request)
    )
    created = sum(1 for r in results if r["status"] == 201)
    shown = [{k: v for k, v in r.items() if k not in ("doc", "label")} for r in results]
    return json_response({"created": created, "failed": len(results) - created, "results": shown})


@idempotency.idempotent("annotation-bulk-update")
@domain_errors
async def bulk_update(request: web.Request) -> web.Response:
    """Many updates or deletes, each conditional on its own version; one result per item, in order."""
    payload = await body_as(request, BulkUpdateIn)
    _within_bulk_limit(request, len(payload.items))
    deps, who, results = request.app[DEPS], request[PRINCIPAL], []
    for index, item in enumerate(payload.items):
        try:
            if item.delete:
                doc = await service.delete(deps, who, item.id, item.version)
            else:
                doc = await service.update(deps, who, item.id, item.patch or AnnotationPatch(), item.version)
        except AnnotationError as exc:
            reason = getattr(exc, "reason", exc.slug)
            results.append({"index": index, "id": item.id, "status": exc.status, "reason": reason, "detail": exc.detail})
        else:
            results.append({"index": index, "id": item.id, "status": 200, "version": doc["version"]})
    done = sum(1 for r in results if r["status"] == 200)
    return json_response({"updated": done, "failed": len(results) - done, "results": results})


@domain_errors
async def get_annotation(request: web.Request) -> web.Response:
    found = await request.app[DEPS].annotations.get_labelled(request.match_info["annotation_id"])
    if found is None:
        raise NotFound(f"No annotation has id {request.match_info['annotation_id']!r}.")
    return await _one(request, found[0], label=found[1])


@domain_errors
async def update_annotation(request: web.Request) -> web.Response:
    expected = if_match(request)
    patch = await body_as(request, AnnotationPatch)
    doc = await service.update(request.app[DEPS], request[PRINCIPAL], request.match_info["annotation_id"], patch, expected)
    return await _one(request, doc, label=doc.label)


@domain_errors
async def delete_annotation(request: web.Request) -> web.Response:
    expected = if_match(request)
    doc = await service.delete(request.app[DEPS], request[PRINCIPAL], request.match_info["annotation_id"], expected)
    return await _one(request, doc, label=doc.label)


@idempotency.idempotent("annotation-revert")
@domain_errors
async def revert_annotation(request: web.Request) -> web.Response:
    expected = if_match(request)
    payload = await body_as(request, RevertIn)
    doc = await service.revert(
        request.app[DEPS], request[PRINCIPAL], request.match_info["annotation_id"], payload.version, expected
    )
    return await _one(request, doc, label=doc.label)


@domain_errors
async def annotation_history(request: web.Request) -> web.Response:
    annotation_id = request.match_info["annotation_id"]
    repo = request.app[DEPS].annotations
    if await repo.get(annotation_id) is None:
        raise NotFound(f"No annotation has id {annotation_id!r}.")
    limit = limit_of(request)
    entries = await repo.history(annotation_id, decode_cursor(request, 0), limit)
    items = [HistoryEntryOut.model_validate(e).model_dump(mode="json") for e in entries]
    return json_response({"items": items, "next": next_cursor(entries, limit, "version")})


def _as_of(request: web.Request) -> datetime | None:
    raw = request.query.get("as_of")
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise Problem(400, "Bad Request", f"'as_of' {raw!r} is not an ISO 8601 time such as 2026-11-25T13:00:00Z.") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        when.astimezone(UTC)  # MongoDB compares in UTC: 9999-12-31T23:59-05:00 has no UTC year to land in
    except OverflowError:
        raise Problem(400, "Bad Request", f"'as_of' {raw!r} lies outside the years 1 to 9999 in UTC.") from None
    return when


@domain_errors
async def image_annotations(request: web.Request) -> web.Response:
    """The annotations of an image, now or (with ``as_of``) as they were at that time."""
    image_id = request.match_info["image_id"]
    repo = request.app[DEPS].annotations
    if not await repo.images([image_id]):
        raise NotFound(f"No image has id {image_id!r}.")
    when = _as_of(request)
    if when is not None:
        docs = await repo.as_of(image_id, when)
        return json_response({"as_of": when.isoformat(), "items": await annotation_out(request, docs), "next": None})
    limit = limit_of(request)
    docs = await repo.for_image(image_id, decode_cursor(request, ""), limit)
    return json_response({"items": await annotation_out(request, docs), "next": next_cursor(docs, limit)})
