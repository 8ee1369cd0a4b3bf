"""End-to-end fixtures: the three services as real processes (``python -m services.<name>``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shared.settings import CorpusSettings
from tests.conftest import isolated_names
from tests.processes import ServiceProcess
from tests.stack import remove_test_data, require_stack


def e2e_names() -> dict:
    """Apart from the in-process integration tests: the processes get stores of their own."""
    return {
        key: f"{value}_e2e" if key == "mongo_db" else (f"{value}-e2e" if key.endswith(("prefix", "bucket", "exchange")) else value)
        for key, value in isolated_names().items()
    }


@contextlib.asynccontextmanager
async def running_services(
    names: dict, log_dir: Path, configure: Callable[[dict[str, ServiceProcess]], None] | None = None
) -> AsyncIterator[dict[str, ServiceProcess]]:
    """The three services as processes on stores of their own (removed afterwards); ``configure`` may
    set each one's environment once all their ports are known."""
    await require_stack(CorpusSettings(**names))
    env = {**os.environ, **{f"CORPUS_{key.upper()}": str(value) for key, value in names.items()}}
    procs = {name: ServiceProcess(name, env, log_dir) for name in ("ingest", "annotation", "search")}
    if configure is not None:
        configure(procs)
    try:
        await asyncio.gather(*(proc.start() for proc in procs.values()))
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()
        await remove_test_data(CorpusSettings(**names))


@pytest.fixture(scope="session")
async def services(tmp_path_factory):
    async with running_services(e2e_names(), tmp_path_factory.mktemp("service-logs")) as procs:
        yield procs
