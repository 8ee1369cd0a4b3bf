"""Builds a service's OpenAPI 3.1 document from its declared endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.web.endpoints import Endpoint

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "required": ["type", "title", "status"],
}


def _response(spec: type[BaseModel] | str, status: int, components: dict[str, Any]) -> dict[str, Any]:
    if isinstance(spec, str):
        if status >= 400:
            return {"description": spec, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        return {"description": spec}
    schema = spec.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components[spec.__name__] = schema
    return {
        "description": spec.__doc__.strip().splitlines()[0] if spec.__doc__ else spec.__name__,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{spec.__name__}"}}},
    }


def build_openapi(title: str, version: str, endpoints: list[Endpoint]) -> dict[str, Any]:
    components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        operation: dict[str, Any] = {
            "summary": ep.summary,
            "operationId": ep.handler.__name__,
            "tags": [ep.tag],
            "responses": {str(code): _response(spec, code, components) for code, spec in ep.responses.items()}
            or {"200": {"description": "OK"}},
        }
        if ep.permission is not None:
            operation["security"] = [{"apiKey": []}]
            operation["x-permission"] = ep.permission.value
            operation["responses"].setdefault("401", _response("No key, or an unknown or revoked key", 401, components))
            operation["responses"].setdefault("403", _response("The key's role lacks the permission", 403, components))
        if ep.parameters:
            operation["parameters"] = ep.parameters
        if ep.request_body:
            operation["requestBody"] = ep.request_body
        paths.setdefault(ep.path, {})[ep.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An Image Corpus API key"}},
        },
    }
