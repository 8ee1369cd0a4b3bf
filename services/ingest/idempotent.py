"""Running a request handler under an ``Idempotency-Key`` header."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from services.ingest.deps import IDEMPOTENCY
from shared.auth import PRINCIPAL
from shared.events import utcnow
from shared.problems import PROBLEM_CONTENT_TYPE, Problem, problem_type

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"

Produce = Callable[[], Awaitable[tuple[int, Any, dict[str, str]]]]


def retry_after(locked_until: datetime | None) -> int:
    """Whole seconds until a running request's lease is renewed or runs out (at least 1)."""
    if locked_until is None:
        return 1
    return max(1, math.ceil((locked_until - utcnow()).total_seconds()))


async def respond(request: web.Request, scope: str, produce: Produce) -> web.Response:
    """Answer with ``produce()``; under a key, store that answer and replay it for repeats."""
    key = request.headers.get(HEADER, "").strip()
    if not key:
        status, body, headers = await produce()
        return web.json_response(body, status=status, headers=headers)
    if len(key) > 255:
        raise Problem(400, "Bad Request", f"The {HEADER} header is longer than 255 characters.")
    store = request.app[IDEMPOTENCY]
    scoped = f"{request[PRINCIPAL].user_id}|{scope}|{key}"
    previous = await store.claim(scoped)
    if previous is not None:
        if previous.status is None:
            raise Problem(
                409,
                "Conflict",
                f"A request with {HEADER} {key!r} is still being processed; retry when it has finished.",
                type_=problem_type("idempotency-in-progress"),
                headers={"Retry-After": str(retry_after(previous.locked_until))},
            )
        content_type = PROBLEM_CONTENT_TYPE if previous.status >= 400 else "application/json"
        return web.json_response(
            previous.body["body"],
            status=previous.status,
            headers={**previous.body["headers"], REPLAYED: "true"},
            content_type=content_type,
        )
    try:
        async with store.leased(scoped):
            status, body, headers = await produce()
    except Problem as problem:
        if problem.status >= 500:
            await store.release(scoped)
            raise
        await store.complete(scoped, problem.status, {"body": problem.to_dict(), "headers": {}})
        raise
    except BaseException:
        await store.release(scoped)
        raise
    await store.complete(scoped, status, {"body": body, "headers": headers})
    return web.json_response(body, status=status, headers=headers)
