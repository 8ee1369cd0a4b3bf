"""Typed app keys for what ingest's handlers need."""

from __future__ import annotations

from aiohttp import web

from services.ingest.adapters.fetcher import SafeFetcher
from services.ingest.adapters.jobs import JobRepository
from services.ingest.config import IngestSettings
from services.ingest.importer import ImportWorker
from services.ingest.service import IngestDeps

INGEST_SETTINGS = web.AppKey("ingest_settings", IngestSettings)
DEPS = web.AppKey("ingest_deps", IngestDeps)
FETCHER = web.AppKey("ingest_fetcher", SafeFetcher)
JOBS = web.AppKey("ingest_jobs", JobRepository)
IMPORT_WORKER = web.AppKey("ingest_import_worker", ImportWorker)
