"""The ``corpus`` command line: one typer app, one sub-command group per area.

Each group lives in its own module and talks to the services over HTTP (or,
for operations such as reindex, to the stores directly), so the CLI works
against a local stack or a remote deployment alike.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import NoReturn

import typer
import typer.main

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
    app.command("export")(annotation.export)  # a command of its own: `corpus export --format … --out …`
    ingest.import_app.command("errors")(annotation.import_errors)  # asks the annotation service, which refused them
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


# MinIO's refusals that say a setting is wrong (exit 2, as a configuration error), and what to check for each.
S3_CONFIGURATION_CODES = {
    "InvalidBucketName": "CORPUS_MINIO_BUCKET is not a valid S3 bucket name",
    "InvalidAccessKeyId": "check CORPUS_MINIO_ACCESS_KEY",
    "SignatureDoesNotMatch": "check CORPUS_MINIO_SECRET_KEY",
}
S3_HINTS = {
    "NoSuchBucket": "check CORPUS_MINIO_BUCKET (a service makes its bucket when it starts)",
    "AccessDenied": "the CORPUS_MINIO_ACCESS_KEY user may not use it",
}


def _s3_error() -> type[Exception]:
    from minio.error import S3Error

    return S3Error


def _refused_by_minio(exc: Exception) -> tuple[str, int]:
    """One line naming the bucket, MinIO's code and what to check, and the exit status (2 when a setting is wrong)."""
    bucket = exc.bucket_name or (exc.resource or "").strip("/").split("/")[0] or "?"
    hint = S3_CONFIGURATION_CODES.get(exc.code) or S3_HINTS.get(exc.code, "")
    said = (exc.message or "").rstrip(".")
    line = f"MinIO refused a request on bucket {bucket!r}: {exc.code}: {said}" + (f"; {hint}" if hint else "")
    return line, 2 if exc.code in S3_CONFIGURATION_CODES else 1


def _raised_by_minio(exc: BaseException) -> bool:
    """The exception was raised inside the minio SDK (which checks a bucket's name with a ValueError before any request)."""
    import minio

    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).is_relative_to(Path(minio.__file__).parent)


def _fail(line: str, status: int) -> NoReturn:
    from rich.console import Console

    Console(stderr=True).print(line, style="red", markup=False, soft_wrap=True)
    raise SystemExit(status)


def main() -> None:
    """The ``corpus`` command: a service or store that does not answer ends it with one line naming what
    was tried and the setting that points there (exit 3), not a traceback; so does MinIO refusing a bucket
    (exit 1, or 2 when a setting is wrong: a bucket name MinIO or its SDK refuses, a key it does not know)."""
    try:
        # The click command itself, not app(): typer's app() sets an attribute on an exception passing through,
        # which minio's S3Error (frozen) refuses: the refusal then surfaced as an AttributeError and two tracebacks.
        typer.main.get_command(app)()
    except _unreachable() as exc:
        _fail(
            f"cannot reach a service or store: {type(exc).__name__}: {exc}\n"
            "Is the stack up (make run)? The CORPUS_*_URL / CORPUS_*_ENDPOINT settings say where each one is.",
            3,
        )
    except _s3_error() as exc:
        _fail(*_refused_by_minio(exc))
    except ValueError as exc:
        if not _raised_by_minio(exc):
            raise
        _fail(f"MinIO's client refused a setting: {exc}; check CORPUS_MINIO_BUCKET (an S3 bucket name)", 2)
