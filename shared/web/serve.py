"""Running a service: ``python -m services.<name>`` ends up here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from shared.logs import configure_logging
from shared.settings import CorpusSettings

log = logging.getLogger(__name__)


def serve(settings: CorpusSettings, factory: Callable[[CorpusSettings], Awaitable[web.Application]]) -> None:
    """Configure logging and run the app until SIGINT/SIGTERM, then shut down cleanly."""
    configure_logging(settings.service_name, settings.log_level)
    app = factory(settings)  # a coroutine: run_app awaits it inside its own loop
    log.info("starting", extra={"host": settings.host, "port": settings.port})
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None, shutdown_timeout=10)
