"""Ingest apps built with settings of their own (allow-lists, import roots, their own exchange),
and a tiny HTTP listener that counts every connection it receives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.ingest.app import init_app
from services.ingest.config import IngestSettings
from shared.settings import CorpusSettings
from tests.conftest import ADMIN
from tests.proxy import TcpProxy
from tests.stack import remove_exchanges


@pytest.fixture
async def make_ingest(names):
    """Build an ingest app against the real stack; ``own_exchange`` keeps its bus traffic apart."""
    clients: list[TestClient] = []
    exchanges: list[str] = []

    async def build(*, own_exchange: bool = False, **overrides) -> TestClient:
        settings = {**names, **overrides}
        if own_exchange:
            settings["amqp_exchange"] = f"{names['amqp_exchange']}-{uuid.uuid4().hex[:6]}"
            exchanges.append(settings["amqp_exchange"])
        client = TestClient(TestServer(await init_app(IngestSettings(**settings))), headers=ADMIN)
        await client.start_server()
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.close()
    if exchanges:
        await remove_exchanges(IngestSettings(**names).amqp_url, exchanges)


@dataclass
class Listener:
    """A minimal HTTP server: ``routes`` maps a path to (status, headers, body)."""

    host: str
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    connections: int = 0
    delay: float = 0.0  # seconds before each answer: a slow source keeps its fetches in hand
    port: int = 0
    server: asyncio.AbstractServer | None = None

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            request_line = (await reader.readline()).decode()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            path = request_line.split(" ")[1] if " " in request_line else "/"
            status, headers, body = self.routes.get(path, (404, {}, b"not here"))
            await asyncio.sleep(self.delay)
            head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
        finally:
            writer.close()

    async def start(self) -> Listener:
        self.server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def listen() -> Callable:
    started: list[Listener] = []

    async def start(host: str = "127.0.0.1") -> Listener:
        listener = await Listener(host).start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.stop()


@pytest.fixture
async def minio_proxy(names):
    """A TCP forwarder in front of MinIO (``tests/proxy.py``): give an ingest app its address, then cut it off."""
    host, port = CorpusSettings(**names).minio_endpoint.rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    yield proxy
    await proxy.cut()
