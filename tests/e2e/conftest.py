"""End-to-end fixtures: the three services as real processes (``python -m services.<name>``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from shared.settings import CorpusSettings
from tests.conftest import isolated_names
from tests.stack import remove_test_data, require_stack

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**env, "CORPUS_PORT": str(self.port)}
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"], env=self.env, cwd=REPO, stdout=log, stderr=log
        )
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as http:  # /readyz needs no key
            while asyncio.get_running_loop().time() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    async with http.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        pytest.fail(f"{self.name} not ready within {timeout}s:\n{self.tail()}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def e2e_names() -> dict:
    """Apart from the in-process integration tests: the processes get stores of their own."""
    return {
        key: f"{value}_e2e" if key == "mongo_db" else (f"{value}-e2e" if key.endswith(("prefix", "bucket", "exchange")) else value)
        for key, value in isolated_names().items()
    }


@pytest.fixture(scope="session")
async def services(tmp_path_factory):
    names = e2e_names()
    await require_stack(CorpusSettings(**names))
    log_dir = tmp_path_factory.mktemp("service-logs")
    env = {**os.environ, **{f"CORPUS_{key.upper()}": str(value) for key, value in names.items()}}
    procs = {name: ServiceProcess(name, env, log_dir) for name in ("ingest", "annotation", "search")}
    try:
        await asyncio.gather(*(proc.start() for proc in procs.values()))
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()
        await remove_test_data(CorpusSettings(**names))
