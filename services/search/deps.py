"""Typed app keys for what search's handlers need."""

from __future__ import annotations

from aiohttp import web

from services.search.adapters.hasher import Hasher
from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.adapters.snapshots import Snapshots
from services.search.config import SearchSettings
from services.search.jobs import JobRegistry
from services.search.projection import Projector
from services.search.similarity import Similarity

SEARCH_SETTINGS = web.AppKey("search_settings", SearchSettings)
INDEX = web.AppKey("image_index", ImageIndex)
READER = web.AppKey("image_reader", ImageReader)
PROJECTOR = web.AppKey("projector", Projector)
SIMILARITY = web.AppKey("similarity", Similarity)
HASHER = web.AppKey("hasher", Hasher)
JOBS = web.AppKey("jobs", JobRegistry)
SNAPSHOTS = web.AppKey("snapshots", Snapshots)
