"""Typed app keys for what ingest's handlers need."""

from __future__ import annotations

from aiohttp import web

from services.ingest.config import IngestSettings
from services.ingest.service import IngestDeps

INGEST_SETTINGS = web.AppKey("ingest_settings", IngestSettings)
DEPS = web.AppKey("ingest_deps", IngestDeps)
