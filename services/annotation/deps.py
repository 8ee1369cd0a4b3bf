"""Typed app keys for what the annotation handlers need."""

from __future__ import annotations

from aiohttp import web

from services.annotation.adapters.search_service import SearchService
from services.annotation.adapters.users import UserRepository
from services.annotation.config import AnnotationSettings
from services.annotation.service import AnnotationDeps

ANNOTATION_SETTINGS = web.AppKey("annotation_settings", AnnotationSettings)
DEPS = web.AppKey("annotation_deps", AnnotationDeps)
USERS_REPO = web.AppKey("users_repo", UserRepository)
SEARCH = web.AppKey("search_service", SearchService)
