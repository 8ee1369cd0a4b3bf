"""Fixtures for search's integration tests: a bus on the session's exchange."""

from __future__ import annotations

import pytest

from shared.bus import Bus


@pytest.fixture
async def bus(base_settings):
    bus = Bus(base_settings.model_copy(update={"service_name": "search-tests"}))
    await bus.connect()
    yield bus
    await bus.close()
