"""``corpus backup``: snapshots of MongoDB and MinIO into a repository folder; verify, list, prune, restore.

Runs against the stores directly (the ``CORPUS_`` settings of the
environment), so it works whether the services are up or not. The
repository layout and the consistency guarantees are described in
:mod:`services.cli.snapshots`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from services.cli.progress import phase_bar
from services.cli.search import run_job
from services.cli.snapshots.repository import Repository, RepositoryError
from services.cli.snapshots.restore import RestoreRefused, restore_snapshot
from services.cli.snapshots.take import SnapshotFailed, take_snapshot
from services.cli.snapshots.verify import prune, verify_snapshot
from services.search import maintenance
from services.search.config import SearchSettings
from shared.settings import CorpusSettings, settings_or_exit

app = typer.Typer(no_args_is_help=True)
console = Console()

REPO = typer.Option(..., "--repo", envvar="CORPUS_BACKUP_REPO", help="The backup repository folder (`corpus backup create` makes it).")
NEW_REPO = typer.Option(..., "--repo", envvar="CORPUS_BACKUP_REPO", help="The backup repository folder (made when missing).")
SNAPSHOT = typer.Argument("latest", help="A snapshot id from `corpus backup list`, or latest.")


def _run(work: Callable[[], Any]) -> Any:
    """Run a backup operation; its expected failures end the command with their message, not a traceback."""
    try:
        return work()
    except (RepositoryError, RestoreRefused, SnapshotFailed) as exc:
        _say(str(exc))
        raise typer.Exit(2) from None
    except OSError as exc:  # the repository folder cannot be made, read or written (a bad path, permissions, a full disk)
        _say(f"the backup repository cannot be used: {exc}")
        raise typer.Exit(2) from None


def _existing(repo: Path) -> Repository:
    """The repository at ``repo``; one that is not there ends the command (exit 2) before any work: only create makes one."""
    repository = Repository(repo)
    _run(repository.check_exists)
    return repository


def _say(problem: str) -> None:
    """Print a problem in red on one line: as text (a path or a JSON error may hold brackets rich would read as markup)."""
    console.print(problem, style="red", markup=False, soft_wrap=True)


def _mib(size: int) -> str:
    return f"{size / 1024**2:,.1f} MiB"


@app.command("create")
def create(
    repo: Path = NEW_REPO,
    snapshot_window: int = typer.Option(
        None, min=1, help="Seconds MongoDB must keep the snapshot's point in time (raised for the dump, then put back): for dumps over 300 s."
    ),
) -> None:
    """Snapshot every collection (at one point in time) and every object the bucket holds; copy only new blobs."""
    settings = settings_or_exit(CorpusSettings, service_name="cli")
    with phase_bar(console) as progress:
        manifest = _run(lambda: asyncio.run(take_snapshot(settings, Repository(repo), progress=progress, snapshot_window=snapshot_window)))
    documents = sum(c.documents for c in manifest.collections)
    console.print(
        f"snapshot {manifest.id}: {documents:,} documents in {len(manifest.collections)} collections "
        f"({manifest.images:,} images), {manifest.objects:,} objects ({_mib(manifest.object_bytes)}); "
        f"copied {manifest.copied:,} new objects ({_mib(manifest.copied_bytes)})"
    )
    for note in manifest.notes:
        console.print(f"[red]{note}[/red]")
    if manifest.missing_objects:
        raise typer.Exit(1)


def _snapshot_table() -> Table:
    """A table that fits 80 columns (a pipe, a cron mail): the id, which names the snapshot, never cut.

    The id is the time the snapshot started (UTC), so it has no separate date column; the numbers fold
    onto a second line rather than being cut when a terminal is narrower still.
    """
    numbers = (Column(name, justify="right", overflow="fold") for name in ("documents", "images", "objects", "size", "copied"))
    return Table(Column("snapshot", no_wrap=True), *numbers, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)


@app.command("list")
def list_snapshots(repo: Path = REPO) -> None:
    """The finished snapshots, oldest first; those whose manifest cannot be read are named after them (exit 1)."""
    repository = _existing(repo)
    table, damaged = _snapshot_table(), []
    for snapshot_id in _run(repository.snapshot_ids):
        try:
            m = repository.manifest(snapshot_id)
        except RepositoryError as exc:  # one damaged manifest does not hide the others
            damaged.append(str(exc))
            continue
        table.add_row(
            m.id, f"{sum(c.documents for c in m.collections):,}", f"{m.images:,}", f"{m.objects:,}", _mib(m.object_bytes), _mib(m.copied_bytes)
        )
    console.print(table)
    for problem in damaged:
        _say(problem)
    if damaged:
        raise typer.Exit(1)


@app.command("verify")
def verify(snapshot: str = SNAPSHOT, repo: Path = REPO, deep: bool = typer.Option(True, help="--no-deep: sizes and presence only, no hashing of every blob.")) -> None:
    """Check a snapshot against its manifest without restoring it; exit 1 when anything is wrong."""
    repository = _existing(repo)
    with phase_bar(console) as progress:
        report = _run(lambda: verify_snapshot(repository, snapshot, deep=deep, progress=progress))
    console.print_json(json.dumps(asdict(report)))
    if report.problem_count:
        console.print(f"[red]{report.problem_count} problem(s) in snapshot {report.snapshot}[/red]")
        raise typer.Exit(1)
    console.print(f"snapshot {report.snapshot} is whole: {report.documents:,} documents, {report.objects:,} objects")


@app.command("prune")
def prune_snapshots(repo: Path = REPO, keep: int = typer.Option(7, min=1, help="How many of the newest snapshots to keep.")) -> None:
    """Remove all but the newest snapshots, and the blobs only they held."""
    repository = _existing(repo)
    report = _run(lambda: prune(repository, keep))
    console.print(f"kept {len(report.kept)}, removed {len(report.removed)} snapshot(s) and {report.removed_blobs:,} blobs ({_mib(report.freed_bytes)})")


@app.command("restore")
def restore(
    snapshot: str = SNAPSHOT,
    repo: Path = REPO,
    replace: bool = typer.Option(False, help="Drop the snapshot's collections in the target database first."),
    reindex: bool = typer.Option(True, help="Rebuild the search index from the restored documents afterwards."),
) -> None:
    """Restore a snapshot into the configured database and bucket, then rebuild the search index."""
    settings, repository = settings_or_exit(SearchSettings, service_name="cli"), _existing(repo)
    with phase_bar(console) as progress:
        report = _run(lambda: asyncio.run(restore_snapshot(settings, repository, snapshot, replace=replace, progress=progress)))
    console.print_json(json.dumps(asdict(report)))
    if reindex:
        result = run_job("reindex", lambda p, progress: maintenance.reindex(p, progress=progress), settings)
        console.print(f"search index rebuilt: {json.dumps(result)}")
