"""A service as its own process (``python -m services.<name>``), the way it is deployed.

The end-to-end tests and the benchmarks that measure over HTTP start the
services with this.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]


class ServiceFailed(RuntimeError):
    """The service exited, or did not become ready in time (the message ends with its log)."""


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
                    raise ServiceFailed(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    async with http.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        self.stop()  # not left running behind the failure
        raise ServiceFailed(f"{self.name} not ready within {timeout}s:\n{self.tail()}")

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


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (children, theirs, ...), read from /proc."""
    found: set[int] = set()
    parents = [pid]
    while parents:
        for child in children(parents.pop()) - found:
            found.add(child)
            parents.append(child)
    return found


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):  # a child belongs to the thread that started it
        try:
            found |= {int(child) for child in (task / "children").read_text().split()}
        except OSError:
            pass  # the thread or the process ended meanwhile
    return found


def is_running(pid: int) -> bool:
    """Alive, a zombie (dead, not reaped: init here may never reap re-parented ones) not counted."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(gone)"
