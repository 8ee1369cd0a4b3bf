"""The ``corpus`` command line: one typer app, one sub-command group per area.

Each group lives in its own module and talks to the services over HTTP (or,
for operations such as reindex, to the stores directly), so the CLI works
against a local stack or a remote deployment alike.
"""

from __future__ import annotations

import typer

app = typer.Typer(name="corpus", help="Image Corpus command line.", no_args_is_help=True)


def _register() -> None:
    # Imported here so that each area's module stays independent of the others.
    from services.cli import stack_ops

    app.add_typer(stack_ops.app, name="bus", help="Dead-letter queues: list and replay parked messages.")
    from services.cli import ingest

    app.add_typer(ingest.ingest_app, name="ingest", help="Upload files or fetch URLs into the ingest service.")
    app.add_typer(ingest.import_app, name="import", help="Import datasets (folder, COCO, YOLO, VOC) with a progress bar.")
    from services.cli import search

    app.add_typer(search.app, name="search", help="Search index: reindex from MongoDB, reconcile drift.")
    from services.cli import annotation

    app.add_typer(annotation.annotation_app, name="annotation", help="Labels, annotation history and revert.")
    app.add_typer(annotation.users_app, name="users", help="Users, roles and API keys (admin).")
    app.add_typer(annotation.export_app, name="export", help="Download images and annotations as COCO, YOLO, YOLO segmentation or VOC.")
    from services.cli import backup

    app.add_typer(backup.app, name="backup", help="Backups: snapshot MongoDB and MinIO into a folder; verify, list, prune, restore.")


_register()

# What the clients raise when a service or store they were pointed at does not answer.
def _unreachable() -> tuple[type[BaseException], ...]:
    import aiohttp
    import aiormq.exceptions
    import elastic_transport
    import urllib3.exceptions
    from pymongo.errors import ConnectionFailure

    return (
        aiohttp.ClientConnectionError,
        aiormq.exceptions.AMQPConnectionError,
        elastic_transport.ConnectionError,
        urllib3.exceptions.HTTPError,
        ConnectionFailure,
        ConnectionError,
        TimeoutError,
    )


def main() -> None:
    """The ``corpus`` command: a service or store that does not answer ends it with one line naming what
    was tried and the setting that points there (exit 3), not a traceback."""
    try:
        app()
    except _unreachable() as exc:
        from rich.console import Console

        Console(stderr=True).print(
            f"[red]cannot reach a service or store: {type(exc).__name__}: {exc}[/red]\n"
            "Is the stack up (make run)? The CORPUS_*_URL / CORPUS_*_ENDPOINT settings say where each one is."
        )
        raise SystemExit(3) from None
