"""User and API key endpoints (admins), and ``/v1/me`` (anyone with a key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.annotation.deps import USERS_REPO
from services.annotation.views.common import body_as, decode_cursor, domain_errors, limit_of, next_cursor
from shared.auth import PRINCIPAL, Role
from shared.web.responses import json_response


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(default="", max_length=200)
    expires_at: datetime | None = None


def user_out(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "name": doc["name"], "role": doc["role"], "disabled": doc.get("disabled", False),
            "created_at": doc["created_at"].isoformat()}  # fmt: skip


def key_out(record: dict[str, Any]) -> dict[str, Any]:
    """A key as listed: its id (the SHA-256 of the key), never the key itself."""
    stamps = {k: record[k].isoformat() if record.get(k) else None for k in ("created_at", "revoked_at", "expires_at")}
    return {"id": record["_id"], "user_id": record["user_id"], "prefix": record["prefix"], "label": record["label"], **stamps}


@domain_errors
async def me(request: web.Request) -> web.Response:
    who = request[PRINCIPAL]
    return json_response({"id": who.user_id, "name": who.name, "role": who.role.value})


@domain_errors
async def list_users(request: web.Request) -> web.Response:
    limit = limit_of(request)
    docs = await request.app[USERS_REPO].page(decode_cursor(request, ""), limit)
    return json_response({"items": [user_out(d) for d in docs], "next": next_cursor(docs, limit)})


@domain_errors
async def create_user(request: web.Request) -> web.Response:
    payload = await body_as(request, UserIn)
    doc = await request.app[USERS_REPO].create(payload.name, payload.role)
    return json_response(user_out(doc), status=201, headers={"Location": f"/v1/users/{doc['_id']}"})


@domain_errors
async def get_user(request: web.Request) -> web.Response:
    return json_response(user_out(await request.app[USERS_REPO].get(request.match_info["user_id"])))


@domain_errors
async def update_user(request: web.Request) -> web.Response:
    payload = await body_as(request, UserPatch)
    changes = {k: (v.value if isinstance(v, Role) else v) for k, v in payload.model_dump(exclude_none=True).items()}
    return json_response(user_out(await request.app[USERS_REPO].update(request.match_info["user_id"], changes)))


@domain_errors
async def issue_key(request: web.Request) -> web.Response:
    payload = await body_as(request, KeyIn)
    key, record = await request.app[USERS_REPO].issue_key(request.match_info["user_id"], payload.label, payload.expires_at)
    return json_response({**key_out(record), "key": key, "note": "Store this key now: it is not shown again."}, status=201)


@domain_errors
async def list_keys(request: web.Request) -> web.Response:
    records = await request.app[USERS_REPO].keys_of(request.match_info["user_id"])
    return json_response({"items": [key_out(r) for r in records], "next": None})


@domain_errors
async def revoke_key(request: web.Request) -> web.Response:
    record = await request.app[USERS_REPO].revoke(request.match_info["user_id"], request.match_info["key_id"])
    return json_response(key_out(record))
