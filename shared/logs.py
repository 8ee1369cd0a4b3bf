"""Structured logs: one JSON object a line, carrying the correlation id.

The correlation id lives in a context variable: the HTTP middleware sets it
from ``X-Correlation-ID`` (or makes one), the consumer sets it from the event
envelope, and every log line and outgoing event picks it up.
"""

from __future__ import annotations

import logging
import sys
import uuid
from contextvars import ContextVar

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from pythonjsonlogger.json import JsonFormatter

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def current_correlation_id() -> str:
    """The id of the work in hand, or a new one when there is none."""
    value = correlation_id.get()
    if value is None:
        value = str(uuid.uuid4())
        correlation_id.set(value)
    return value


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.correlation_id = correlation_id.get()
        return True


class ClientFaultFilter(logging.Filter):
    """aiohttp's server logs a request it cannot parse (a request line over the limit, a body that
    is not the gzip it claims, bytes that are not HTTP) as an ERROR with a traceback, the body's
    even after the service answered it. The fault is the client's and it got a 400, so the record
    becomes one WARNING line that says what was wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        client_fault = isinstance(exc, RequestPayloadError) or (isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500)
        if client_fault:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "a client"
            record.msg, record.args = "refused a malformed request from %s: %s", (remote, " ".join(str(exc).split())[:300])
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{service}{correlation_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO (every ES request, every AMQP frame).
    for noisy in ("elastic_transport", "aiormq", "aio_pika", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    server.filters[:] = [f for f in server.filters if not isinstance(f, ClientFaultFilter)]
    server.addFilter(ClientFaultFilter())
