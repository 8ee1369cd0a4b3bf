"""The one exception that says "a store we depend on is unavailable", in a module of its own that imports
nothing: the ingest worker processes load the module that raises it (``services/ingest/adapters/cpu.py``),
and ``shared.outages`` imports every store's client (about a second), which a fresh worker would spend
inside its first job's time bound."""

from __future__ import annotations


class DependencyUnavailable(Exception):
    """A store this service depends on does not answer, or answers that it is busy: retry until it does."""

    store = "a store"
