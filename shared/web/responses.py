"""JSON answers for documents straight from MongoDB, whose values JSON does not know by itself."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from aiohttp import web


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """``web.json_response``, with times as ISO 8601 and anything else JSON lacks as its text."""
    return web.json_response(body, status=status, headers=headers, dumps=lambda v: json.dumps(v, default=_plain))
