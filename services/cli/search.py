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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.search import maintenance
from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.config import SearchSettings
from services.search.projection import Projector
from shared.clients.elastic import elastic_client
from shared.clients.mongo import database, mongo_client

app = typer.Typer(no_args_is_help=True)
console = Console()


async def _with_projector(work: Callable[[Projector, maintenance.Progress], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    settings = SearchSettings(service_name="cli")
    es, client = elastic_client(settings), mongo_client(settings)
    index = ImageIndex(es, settings.es_index_prefix, shards=settings.es_shards, replicas=settings.es_replicas)
    try:
        await index.ensure()
        projector = Projector(ImageReader(database(client, settings)), index)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("starting", total=None)

            def progress(phase: str, done: int, total: int | None) -> None:
                bar.update(task, description=phase, completed=done, total=total)

            return await work(projector, progress)
    finally:
        await es.close()
        await client.close()


@app.command("reindex")
def reindex() -> None:
    """Build a new index from MongoDB and switch the alias to it atomically (searches keep answering)."""
    result = asyncio.run(_with_projector(lambda p, progress: maintenance.reindex(p, progress=progress)))
    console.print_json(json.dumps(result))


@app.command("reconcile")
def reconcile(repair: bool = typer.Option(True, help="Repair the drift found (--no-repair: only report it).")) -> None:
    """Compare ids and versions between MongoDB and the index; report the drift and repair it."""
    result = asyncio.run(_with_projector(lambda p, progress: maintenance.reconcile(p, repair=repair, progress=progress)))
    console.print_json(json.dumps(result))
    if result["drift"] and not repair:
        raise typer.Exit(1)
