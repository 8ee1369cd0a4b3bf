"""Running a service: ``python -m services.<name>`` ends up here."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable

import uvloop
from aiohttp import web

from shared.logs import configure_logging
from shared.outages import unavailable_store
from shared.settings import CorpusSettings

log = logging.getLogger(__name__)


async def _freeze_heap(app: web.Application) -> None:
    """Move everything made at start-up (modules, schemas, clients) out of the collector's reach.

    The objects live as long as the process; without this every full collection walks
    them all again, a pause of milliseconds in the middle of some request.
    """
    gc.collect()
    gc.freeze()
    log.info("start-up heap frozen", extra={"objects": gc.get_freeze_count()})


def loop_factory(settings: CorpusSettings) -> Callable[[], asyncio.AbstractEventLoop]:
    """How the processes of a service make their event loop (``CORPUS_EVENT_LOOP``)."""
    return uvloop.new_event_loop if settings.event_loop == "uvloop" else asyncio.new_event_loop


def serve(settings: CorpusSettings, factory: Callable[[CorpusSettings], Awaitable[web.Application]]) -> None:
    """Configure logging and run the app until SIGINT/SIGTERM, then shut down cleanly."""
    configure_logging(settings.service_name, settings.log_level)

    async def build() -> web.Application:  # run_app awaits this inside its own loop
        app = await factory(settings)
        app.on_startup.append(_freeze_heap)  # after the cleanup contexts have started the clients
        return app

    log.info("starting", extra={"host": settings.host, "port": settings.port, "event_loop": settings.event_loop})
    loop = loop_factory(settings)()
    try:
        web.run_app(build(), host=settings.host, port=settings.port, print=None, access_log=None, shutdown_timeout=10, loop=loop)
    except Exception as exc:  # noqa: BLE001 - one log line (JSON like every other) and exit 1, not a bare traceback
        store = unavailable_store(exc)
        if store is not None:
            log.critical("cannot start: %s does not answer (%s); it is waited for up to CORPUS_STARTUP_PATIENCE_SECONDS", store, repr(exc)[:300])
        else:
            log.critical("cannot start", exc_info=exc)
        raise SystemExit(1) from None
