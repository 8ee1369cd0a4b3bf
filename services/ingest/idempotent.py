"""Running a request handler under an ``Idempotency-Key`` header.

The first answer to a key is stored and replayed for every repeat, together
with the request's fingerprint (``services.ingest.fingerprint``): a repeat
that asks for something else under the same key is refused with 422 instead
of being answered, silently, with what the key first stood for.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from services.ingest import fingerprint
from services.ingest.deps import IDEMPOTENCY
from shared.auth import PRINCIPAL
from shared.events import utcnow
from shared.problems import PROBLEM_CONTENT_TYPE, Problem, problem_type

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"

Produce = Callable[[], Awaitable[tuple[int, Any, dict[str, str]]]]
Reread = Callable[[], Awaitable[object]]


def retry_after(locked_until: datetime | None) -> int:
    """Whole seconds until a running request's lease is renewed or runs out (at least 1)."""
    if locked_until is None:
        return 1
    return max(1, math.ceil((locked_until - utcnow()).total_seconds()))


async def _reread(reread: Reread) -> None:
    """Parse a repeat's body for its fingerprint; a refusal while parsing is part of what it asked for
    (the first request met the same one at the same place)."""
    try:
        await reread()
    except Problem:
        pass


async def respond(request: web.Request, scope: str, produce: Produce, reread: Reread) -> web.Response:
    """Answer with ``produce()``; under a key, store that answer and replay it for repeats.

    ``reread()`` parses the body the way ``produce`` does and nothing more, so a
    repeat's fingerprint can be compared with the first request's.
    """
    key = request.headers.get(HEADER, "").strip()
    if not key:
        status, body, headers = await produce()
        return web.json_response(body, status=status, headers=headers)
    if len(key) > 255:
        raise Problem(400, "Bad Request", f"The {HEADER} header is longer than 255 characters.")
    store = request.app[IDEMPOTENCY]
    scoped = f"{request[PRINCIPAL].user_id}|{scope}|{key}"
    fp = fingerprint.start(request)
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
        if previous.fingerprint is not None:
            await _reread(reread)
            if fp.hexdigest() != previous.fingerprint:
                raise Problem(
                    422,
                    "Unprocessable Content",
                    f"The {HEADER} {key!r} was first used for a different request (other files or fields); "
                    "send a new key with a new request.",
                    type_=problem_type("idempotency-key-reused"),
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
        await store.complete(scoped, problem.status, {"body": problem.to_dict(), "headers": {}}, fp.hexdigest())
        raise
    except BaseException:
        await store.release(scoped)
        raise
    await store.complete(scoped, status, {"body": body, "headers": headers}, fp.hexdigest())
    return web.json_response(body, status=status, headers=headers)
