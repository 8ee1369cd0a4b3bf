"""``corpus search``: rebuild the search index from MongoDB, or check and repair it, with progress.

Runs against the stores directly (the settings of the environment, prefix
``CORPUS_``), so it works while the search service is down, e.g. after
Elasticsearch lost its data.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from rich.console import Console

from services.cli.progress import phase_bar
from services.search import maintenance
from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.config import SearchSettings
from services.search.projection import Projector
from shared.clients.elastic import elastic_client
from shared.clients.mongo import database, mongo_client
from shared.settings import settings_or_exit

app = typer.Typer(no_args_is_help=True)
console = Console()


async def with_projector(
    work: Callable[[Projector, maintenance.Progress], Awaitable[dict[str, Any]]], settings: SearchSettings | None = None
) -> dict[str, Any]:
    """Run ``work`` with a projector from MongoDB into the index, drawing its progress as a bar."""
    settings = settings or settings_or_exit(SearchSettings, service_name="cli")
    es, client = elastic_client(settings), mongo_client(settings)
    index = ImageIndex(
        es, settings.es_index_prefix, shards=settings.es_shards, replicas=settings.es_replicas, keep_alive=settings.cursor_keep_alive
    )
    try:
        await index.ensure()
        projector = Projector(ImageReader(database(client, settings)), index)
        with phase_bar(console) as progress:
            return await work(projector, progress)
    finally:
        await es.close()
        await client.close()


@app.command("reindex")
def reindex() -> None:
    """Build a new index from MongoDB and switch the alias to it atomically (searches keep answering)."""
    result = asyncio.run(with_projector(lambda p, progress: maintenance.reindex(p, progress=progress)))
    console.print_json(json.dumps(result))


@app.command("reconcile")
def reconcile(repair: bool = typer.Option(True, help="Repair the drift found (--no-repair: only report it).")) -> None:
    """Compare ids and versions between MongoDB and the index; report the drift and repair it.

    Exits 1 when drift is left: found with --no-repair, or left by the repair (ahead of MongoDB, refused)."""
    result = asyncio.run(with_projector(lambda p, progress: maintenance.reconcile(p, repair=repair, progress=progress)))
    console.print_json(json.dumps(result))
    if (result["drift"] and not repair) or result.get("unrepaired") or result.get("refused"):
        raise typer.Exit(1)
