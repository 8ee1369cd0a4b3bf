"""``corpus search``: rebuild the search index from MongoDB, or check and repair it, with progress.

Runs against the stores directly (the settings of the environment, prefix
``CORPUS_``), so it works while the search service is down, e.g. after
Elasticsearch lost its data.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from rich.console import Console

from services.cli.progress import phase_bar
from services.search import maintenance
from services.search.adapters.images import ImageReader
from services.search.adapters.index import ImageIndex
from services.search.config import SearchSettings
from services.search.jobs import Job, JobRegistry, JobRunning
from services.search.projection import Projector
from shared.clients.elastic import elastic_client
from shared.clients.mongo import database, mongo_client
from shared.settings import settings_or_exit

app = typer.Typer(no_args_is_help=True)
console = Console()


async def as_job(kind: str, work: Callable[[Projector, maintenance.Progress], Awaitable[dict[str, Any]]], settings: SearchSettings | None = None) -> Job:
    """Run ``work`` with a projector from MongoDB into the index, drawing its progress as a bar, as a
    maintenance job: under the lock the service's jobs take (one reindex or reconcile at a time, wherever it
    was started), and listed with them."""
    settings = settings or settings_or_exit(SearchSettings, service_name="cli")
    es, client = elastic_client(settings), mongo_client(settings)
    index = ImageIndex(
        es, settings.es_index_prefix, shards=settings.es_shards, replicas=settings.es_replicas, keep_alive=settings.cursor_keep_alive
    )
    try:
        db = database(client, settings)
        jobs = JobRegistry(db, owner=f"cli-{socket.gethostname()}-{os.getpid()}")
        await jobs.ensure_indexes()
        await index.ensure()
        projector = Projector(ImageReader(db), index)
        with phase_bar(console) as progress:
            return await jobs.run(kind, lambda job_progress: work(projector, job_progress), progress)
    finally:
        await es.close()
        await client.close()


def run_job(
    kind: str, work: Callable[[Projector, maintenance.Progress], Awaitable[dict[str, Any]]], settings: SearchSettings | None = None
) -> dict[str, Any]:
    """The job's result; exits 2 when another maintenance job runs, 1 when this one failed."""
    try:
        job = asyncio.run(as_job(kind, work, settings))
    except JobRunning as running:
        console.print(f"[red]A {running.job.kind} job ({running.job.id}, run by {running.job.owner}) is running; try again when it has ended.[/red]")
        raise typer.Exit(2) from None
    if job.state != "succeeded":
        console.print(f"[red]The {kind} failed: {job.error}[/red]")
        raise typer.Exit(1)
    return job.result or {}


@app.command("reindex")
def reindex() -> None:
    """Build a new index from MongoDB and switch the alias to it atomically (searches keep answering)."""
    result = run_job("reindex", lambda p, progress: maintenance.reindex(p, progress=progress))
    console.print_json(json.dumps(result))


@app.command("reconcile")
def reconcile(repair: bool = typer.Option(True, help="Repair the drift found (--no-repair: only report it).")) -> None:
    """Compare ids and versions between MongoDB and the index; report the drift and repair it.

    Exits 1 when drift is left: found with --no-repair, or left by the repair (ahead of MongoDB, refused)."""
    result = run_job("reconcile", lambda p, progress: maintenance.reconcile(p, repair=repair, progress=progress))
    console.print_json(json.dumps(result))
    if (result["drift"] and not repair) or result.get("unrepaired") or result.get("refused"):
        raise typer.Exit(1)
