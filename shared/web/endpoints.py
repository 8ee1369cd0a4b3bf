"""Endpoints declared once: routed by aiohttp and described in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from shared.auth import Permission

ViewHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: ViewHandler
    summary: str
    # Who may call it (shared/auth/rules.py); None: public (health, metrics, OpenAPI only).
    permission: Permission | None
    tag: str = "default"
    # OpenAPI parameter objects (query and path parameters).
    parameters: list[dict[str, Any]] = field(default_factory=list)
    # An OpenAPI requestBody object, or None.
    request_body: dict[str, Any] | None = None
    # status → a pydantic model (its JSON schema) or a description.
    responses: dict[int, type[BaseModel] | str] = field(default_factory=dict)


def query_param(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}
