"""Shared fixtures. Integration and end-to-end tests talk to the real local stack
(`make stack`); each test session works in its own database, index prefix,
bucket and exchange, and removes them afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared.settings import CorpusSettings

RUN_ID = uuid.uuid4().hex[:10]
ADMIN_KEY = f"ick_test_admin_{RUN_ID}"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def isolated_names() -> dict[str, Any]:
    """Settings overrides that keep one test session's data apart from everything else."""
    return {
        "mongo_db": f"test_{RUN_ID}",
        "es_index_prefix": f"test-{RUN_ID}",
        "minio_bucket": f"test-{RUN_ID}",
        "amqp_exchange": f"test-{RUN_ID}",
        "consume_backoff_seconds": 0.01,
        "outbox_poll_seconds": 0.2,
        "admin_key": ADMIN_KEY,
    }


@pytest.fixture(scope="session")
def names() -> dict[str, Any]:
    return isolated_names()


@pytest.fixture(scope="session")
def base_settings(names) -> CorpusSettings:
    return CorpusSettings(**names)


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until ``check`` returns a truthy value; fail with the last value otherwise.

    Waits for asynchronous effects (an event travelling the bus); it is not a
    speed assertion: the timeout only bounds a broken run.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s; last value: {last!r}")
        await asyncio.sleep(interval)
