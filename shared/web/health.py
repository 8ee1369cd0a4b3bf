"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

ReadinessCheck = Callable[[], Awaitable[None]]
READINESS_CHECKS = web.AppKey("readiness_checks", dict[str, ReadinessCheck])
# Dependencies the service serves without, a while: reported, and "degraded", but still 200. RabbitMQ is one:
# writes go on (their events wait in the outbox) and reads need it not at all, so an orchestrator that
# routed on its state would take every service out of rotation for a broker restart.
DEGRADED_CHECKS = web.AppKey("degraded_checks", dict[str, ReadinessCheck])
CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _check(fn: ReadinessCheck) -> str:
    try:
        await asyncio.wait_for(fn(), timeout=CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"failed: no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # noqa: BLE001 - the point is to report any failure
        return f"failed: {type(exc).__name__}: {exc}"[:300]
    return "ok"


async def readyz(request: web.Request) -> web.Response:
    required, optional = request.app[READINESS_CHECKS], request.app.get(DEGRADED_CHECKS, {})
    checks = {**required, **optional}
    names = list(checks)
    results = await asyncio.gather(*(_check(checks[name]) for name in names))
    report = dict(zip(names, results, strict=True))
    ready = all(report[name] == "ok" for name in required)
    status = "not ready" if not ready else "ready" if all(result == "ok" for result in results) else "degraded"
    return web.json_response({"status": status, "checks": report}, status=200 if ready else 503)
