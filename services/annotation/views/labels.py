"""Label endpoints: list, resolve, create, rename/describe/re-parent, alias, merge."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.annotation.deps import DEPS
from services.annotation.domain.errors import LabelConflict, NotFound
from services.annotation.domain.fields import MAX_DESCRIPTION_CHARS
from services.annotation.views.common import body_as, decode_cursor, domain_errors, limit_of, next_cursor
from shared.auth import PRINCIPAL
from shared.keypoint_schema import checked_schema
from shared.web.responses import json_response


KEYPOINTS_DOC = 'Keypoint names, in order (COCO\'s "keypoints"): annotations of the label have one point per name'
SKELETON_DOC = "Edges between keypoints, as pairs of keypoint numbers counted from 1 (COCO's \"skeleton\")"


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    parent: str | None = Field(default=None, description="The parent label's name (created if new)")
    external_ids: dict[str, str] = Field(default={}, description='e.g. {"coco": "18", "wordnet": "n02084071"}')
    keypoints: list[str] | None = Field(default=None, description=KEYPOINTS_DOC)
    skeleton: list[list[int]] | None = Field(default=None, description=SKELETON_DOC)

    @model_validator(mode="after")
    def _schema(self) -> LabelIn:
        if self.keypoints is not None or self.skeleton is not None:
            self.keypoints, self.skeleton = checked_schema(self.keypoints, self.skeleton)
        return self


class LabelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, description="Rename (the old name is freed)")
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    parent_id: str | None = None
    external_ids: dict[str, str] | None = None
    keypoints: list[str] | None = Field(default=None, description=f"{KEYPOINTS_DOC}; null removes the schema")
    skeleton: list[list[int]] | None = Field(default=None, description=f"{SKELETON_DOC}; checked against the keypoints")


class AliasIn(BaseModel):
    alias: str = Field(min_length=1)


class MergeIn(BaseModel):
    into: str = Field(description="The id of the label that survives")


class LabelOut(BaseModel):
    """A label: normalised name, aliases, description, parent, external ids."""

    id: str
    name: str
    aliases: list[str] = []
    description: str | None = None
    parent_id: str | None = None
    external_ids: dict[str, str] = {}
    keypoints: list[str] | None = None
    skeleton: list[list[int]] | None = None
    merged_into: str | None = None

    @field_validator("external_ids", mode="before")
    @classmethod
    def _flat(cls, value: Any) -> dict[str, str]:
        """Before schemes were checked, a scheme with a dot was stored as a path (``{"a": {"b": "1"}}`` for
        ``a.b``): read such a label back as it was sent instead of failing every read of it."""
        return dict(_flattened(value or {}))

    @classmethod
    def of(cls, doc: dict[str, Any]) -> dict[str, Any]:
        return cls(id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}).model_dump(mode="json")


def _flattened(value: dict, prefix: str = ""):
    for key, item in value.items():
        if isinstance(item, dict):
            yield from _flattened(item, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", str(item)


@domain_errors
async def list_labels(request: web.Request) -> web.Response:
    limit = limit_of(request)
    docs = await request.app[DEPS].labels.page(decode_cursor(request, ""), limit)
    return json_response({"items": [LabelOut.of(d) for d in docs], "next": next_cursor(docs, limit, "name")})


@domain_errors
async def resolve_label(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    doc = await request.app[DEPS].labels.resolve(name)
    if doc is None:
        raise NotFound(f"No label or alias is named {name!r} (after normalisation).")
    return json_response(LabelOut.of(await request.app[DEPS].labels.live(doc["_id"])))


@domain_errors
async def get_label(request: web.Request) -> web.Response:
    return json_response(LabelOut.of(await request.app[DEPS].labels.get(request.match_info["label_id"])))


@domain_errors
async def create_label(request: web.Request) -> web.Response:
    payload = await body_as(request, LabelIn)
    schema = (payload.keypoints, payload.skeleton or []) if payload.keypoints is not None else None
    doc, created = await request.app[DEPS].labels.ensure(
        payload.name, request[PRINCIPAL].user_id, description=payload.description, parent=payload.parent,
        external_ids=payload.external_ids, schema=schema,
    )  # fmt: skip
    if schema is not None and (doc.get("keypoints"), doc.get("skeleton") or []) != schema:
        raise LabelConflict(
            f"The label {doc['name']!r} already has another keypoint schema ({len(doc['keypoints'])} keypoints); "
            f"change it with PATCH /v1/labels/{doc['_id']} (annotations made under it keep their points)."
        )
    return json_response(LabelOut.of(doc), status=201 if created else 200, headers={"Location": f"/v1/labels/{doc['_id']}"})


@domain_errors
async def update_label(request: web.Request) -> web.Response:
    payload = await body_as(request, LabelPatch)
    labels, label_id, actor = request.app[DEPS].labels, request.match_info["label_id"], request[PRINCIPAL].user_id
    changes = payload.model_dump(exclude_unset=True)
    if "name" in changes:
        await labels.rename(label_id, changes.pop("name"), actor)
    doc = await labels.update(label_id, changes, actor) if changes else await labels.get(label_id)
    return json_response(LabelOut.of(doc))


@domain_errors
async def add_alias(request: web.Request) -> web.Response:
    payload = await body_as(request, AliasIn)
    doc = await request.app[DEPS].labels.add_alias(request.match_info["label_id"], payload.alias, request[PRINCIPAL].user_id)
    return json_response(LabelOut.of(doc))


@domain_errors
async def merge_label(request: web.Request) -> web.Response:
    payload = await body_as(request, MergeIn)
    doc = await request.app[DEPS].labels.merge(request.match_info["label_id"], payload.into, request[PRINCIPAL].user_id)
    return json_response(LabelOut.of(doc))
