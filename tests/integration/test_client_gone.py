"""A client that hangs up mid-request is the client's business: an INFO line and a 499 in the metrics, not an
ERROR with a traceback and a 500 (a tester's half-hour run logged 254 such "errors", the only ones in it)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from tests.conftest import ADMIN, eventually
from tests.processes import free_port

pytestmark = pytest.mark.integration


def _answered(service: str, status: str) -> float:
    labels = {"service": service, "method": "POST", "route": "/v1/images", "status": status}
    return REGISTRY.get_sample_value("corpus_http_requests_total", labels) or 0.0


async def _hang_up_mid_upload(port: int) -> None:
    boundary = "cut-short"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="half.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    body = head.encode() + b"\xff\xd8\xff\xe0" + b"\0" * 20_000  # half a JPEG; the rest never comes
    request = (
        f"POST /v1/images HTTP/1.1\r\nHost: test\r\nAuthorization: {ADMIN['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body) * 10}\r\n\r\n"
    ).encode() + body
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    await asyncio.sleep(0.3)  # the service is reading the file part
    writer.close()
    await writer.wait_closed()


# As the services run (web.run_app: the handler reads "Connection lost"), and as aiohttp's test server runs them
# (the handler is cancelled).
@pytest.mark.parametrize("cancelled", [False, True], ids=["as-served", "handler-cancelled"])
async def test_an_upload_the_client_hangs_up_on_is_counted_as_499_and_logged_as_info(names, caplog, cancelled):
    from services.ingest.app import init_app
    from services.ingest.config import IngestSettings

    settings = IngestSettings(**names)
    runner = web.AppRunner(await init_app(settings), handler_cancellation=cancelled)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    service = settings.service_name
    before_499, before_500 = _answered(service, "499"), _answered(service, "500")
    try:
        with caplog.at_level(logging.INFO):
            await _hang_up_mid_upload(port)

            async def counted():
                return _answered(service, "499") > before_499

            await eventually(counted)
    finally:
        await runner.cleanup()
    assert _answered(service, "500") == before_500
    assert [r for r in caplog.records if r.name == "shared.web.middlewares" and r.levelno == logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
