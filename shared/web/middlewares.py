"""One middleware for every request: correlation id, problem details, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiohttp import web

from shared.logs import correlation_id
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.outages import unavailable_store
from shared.problems import Problem, problem_type
from shared.web.bodies import UNREADABLE_BODY

log = logging.getLogger(__name__)

CORRELATION_HEADER = "X-Correlation-ID"
SERVICE_NAME = web.AppKey("service_name", str)
# Seconds a client is told to wait when a store is unavailable.
RETRY_AFTER_OUTAGE = 5


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _from_http_exception(exc: web.HTTPException) -> Problem:
    detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else None
    return Problem(exc.status, exc.reason, detail, headers={k: v for k, v in exc.headers.items() if k == "Allow"})


# nginx's "client closed request": the status a request the client hung up on is counted under.
CLIENT_GONE = 499


def _client_gone(request: web.Request, exc: Exception) -> bool:
    """The client hung up while the request was read or answered (its connection is closed or closing)."""
    transport = request.transport
    return isinstance(exc, ConnectionError) and (transport is None or transport.is_closing())


@web.middleware
async def observe(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    cid = request.headers.get(CORRELATION_HEADER) or str(uuid.uuid4())
    token = correlation_id.set(cid)
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except Problem as problem:
            response = problem.to_response(request.path)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _from_http_exception(exc).to_response(request.path)
        except asyncio.CancelledError:
            # A handler is cancelled when its client hangs up (or the server stops): no answer, no error of ours.
            log.info("the request was cancelled", extra={"path": request.path})
            response = web.Response(status=CLIENT_GONE)  # for the metrics only
            raise
        except UNREADABLE_BODY as exc:  # the body is not what its headers say (a gzip that is no gzip, cut short)
            response = Problem(
                400, "Bad Request", f"The request body cannot be read: {exc}.", type_=problem_type("malformed-body")
            ).to_response(request.path)
        except Exception as exc:  # noqa: BLE001 - a bug answers 500 with details in the log, never a traceback
            if _client_gone(request, exc):
                # Not our failure: it was an ERROR with a traceback and a 500 in the metrics (254 in a tester's
                # half-hour run, the only errors in it), which would page someone for clients' dropped links.
                log.info("the client went away mid-request", extra={"path": request.path, "error": repr(exc)[:200]})
                response = web.Response(status=CLIENT_GONE)  # nobody reads it; the metrics count it apart
            elif (store := unavailable_store(exc)) is not None:
                log.warning("a store is unavailable", extra={"path": request.path, "store": store, "error": repr(exc)[:500]})
                response = Problem(
                    503,
                    "Service Unavailable",
                    f"{store} does not answer right now; retry in a few seconds.",
                    type_=problem_type("store-unavailable"),
                    headers={"Retry-After": str(RETRY_AFTER_OUTAGE)},
                    store=store,
                    correlation_id=cid,
                ).to_response(request.path)
            else:
                log.exception("unhandled error", extra={"path": request.path})
                response = Problem(
                    500,
                    "Internal Server Error",
                    "An unexpected error occurred. Quote the correlation id when reporting it.",
                    correlation_id=cid,
                ).to_response(request.path)
        response.headers[CORRELATION_HEADER] = cid
        return response
    finally:
        service = request.app[SERVICE_NAME]
        route = _route_label(request)
        status = str(getattr(locals().get("response"), "status", 500))
        HTTP_REQUESTS.labels(service, request.method, route, status).inc()
        HTTP_LATENCY.labels(service, request.method, route).observe(time.perf_counter() - started)
        correlation_id.reset(token)
