"""Structured logs: one JSON object a line, carrying the correlation id.

The correlation id lives in a context variable: the HTTP middleware sets it
from ``X-Correlation-ID`` (or makes one), the consumer sets it from the event
envelope, and every log line and outgoing event picks it up.
"""

from __future__ import annotations

import logging
import sys
import time
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


class ReconnectNoiseFilter(logging.Filter):
    """While RabbitMQ is away, a robust connection tries again every few seconds and each try logged twice:
    aiormq's ERROR "error when creating transport" and aio-pika's WARNING "Connection attempt ... failed"
    (a ten-minute outage: 240 lines for each connection of each service). aiormq's line is dropped: aio-pika's
    says the same, and a first connection's failure reaches the caller as an exception. aio-pika's passes once
    a minute for each connection, with the number of attempts that failed in between."""

    INTERVAL_SECONDS = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, tuple[float, int]] = {}  # connection → (when its last line passed, attempts since)

    @property
    def held_back(self) -> int:
        """Attempts not logged since each connection's last line, over all connections."""
        return sum(since for _, since in self._shown.values())

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "aiormq.connection":
            return not str(record.msg).startswith("error when creating transport")
        if not (record.name == "aio_pika.robust_connection" and str(record.msg).startswith("Connection attempt to")):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        key, now = str(args[0]) if args else "", time.monotonic()
        shown, since = self._shown.get(key, (float("-inf"), 0))
        if now - shown < self.INTERVAL_SECONDS:
            self._shown[key] = (shown, since + 1)
            return False
        self._shown[key] = (now, 0)
        if since:
            record.msg, record.args = f"{record.msg} (%d more attempts failed since the last such line)", (*args, since)
        return True


RECONNECT_LOGGERS = ("aiormq.connection", "aio_pika.robust_connection")


def quiet_reconnects() -> ReconnectNoiseFilter:
    """Put one :class:`ReconnectNoiseFilter` on the loggers that report reconnect attempts (replacing any)."""
    noise = ReconnectNoiseFilter()
    for name in RECONNECT_LOGGERS:
        logger = logging.getLogger(name)
        logger.filters[:] = [f for f in logger.filters if not isinstance(f, ReconnectNoiseFilter)]
        logger.addFilter(noise)
    return noise


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
    quiet_reconnects()
    server = logging.getLogger("aiohttp.server")
    server.filters[:] = [f for f in server.filters if not isinstance(f, ClientFaultFilter)]
    server.addFilter(ClientFaultFilter())
