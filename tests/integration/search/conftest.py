"""Fixtures for search's integration tests: a bus on the session's exchange; a projector of its own."""

from __future__ import annotations

import uuid

import pytest

from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.projection import Projector
from shared.bus import Bus
from shared.clients.mongo import mongo_client


@pytest.fixture
async def bus(base_settings):
    bus = Bus(base_settings.model_copy(update={"service_name": "search-tests"}))
    await bus.connect()
    yield bus
    await bus.close()


@pytest.fixture
async def projector(base_settings, es):
    """A projector from a database of its own into an index of its own: maintenance run on it meets no
    other test's images."""
    client = mongo_client(base_settings)
    db = client[f"test_maint_{uuid.uuid4().hex[:8]}"]
    index = ImageIndex(es, f"{base_settings.es_index_prefix}-maint-{uuid.uuid4().hex[:6]}")
    await index.ensure()
    yield Projector(ImageReader(db), index)
    for name in (await es.indices.get(index=f"{index.alias}-*")).body:
        await es.indices.delete(index=name)
    await client.drop_database(db.name)
    await client.close()
