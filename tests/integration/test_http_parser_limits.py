"""What aiohttp's HTTP parser lets through to the services, and what it says of what it refuses."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.logs import ClientFaultFilter
from shared.web.app import HTTP_PARSER_LIMITS
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.integration


async def _raw(client, head: str, body: bytes = b"") -> bytes:
    url = client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(f"{head}\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\nConnection: close\r\n\r\n".encode() + body)
    answer = await reader.read()
    writer.close()
    return answer


TOO_LONG = ("GET /v1/search?q=" + "a" * (HTTP_PARSER_LIMITS["max_line_size"] + 10) + " HTTP/1.1", b"")
NOT_GZIP = (
    "POST /v1/search/similar HTTP/1.1\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 17",
    b"\x00 not gzip at all",
)


async def test_a_search_longer_than_8_kib_reaches_the_service(search_client):
    labels = ",".join(f"label-number-{n:05d}" for n in range(800))  # ~15 KiB: aiohttp's default refuses over 8 KiB
    response = await search_client.get("/v1/search", params={"labels": labels})
    assert response.status == 200, await response.text()
    assert (await response.json())["total"] == 0


@pytest.mark.parametrize("head, body", [TOO_LONG, NOT_GZIP], ids=["request-line-over-the-limit", "body-not-gzip"])
async def test_a_request_the_parser_refuses_is_one_warning_line_not_a_traceback(search_client, caplog, head, body):
    server_log = logging.getLogger("aiohttp.server")
    fault_filter = ClientFaultFilter()
    server_log.addFilter(fault_filter)
    try:
        with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
            answer = await _raw(search_client, head, body)
            await asyncio.sleep(0.05)
    finally:
        server_log.removeFilter(fault_filter)
    assert answer.split(b"\r\n", 1)[0].split(b" ", 1)[1].startswith(b"400"), answer[:200]
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records, "aiohttp logged nothing for the refused request"
    for record in records:
        assert record.levelno == logging.WARNING and record.exc_info is None
        message = record.getMessage()
        assert message.startswith("refused a malformed request from ") and "400" in message
        assert len(message) < 500  # the 64 KiB line is not copied into the log
