"""``corpus ingest`` (files, URLs) and ``corpus import`` (datasets): the ingest service over HTTP.

The server address and API key come from options or the environment
(``CORPUS_INGEST_URL``, ``CORPUS_API_KEY``), so the same commands work against
a local stack or a remote deployment.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential

from services.cli.problems import print_problem
from services.ingest.domain.datasets import KINDS
from services.ingest.domain.datasets.model import IMAGE_SUFFIXES

ingest_app = typer.Typer(no_args_is_help=True, help="Send images to the ingest service.")
import_app = typer.Typer(no_args_is_help=True, help="Import datasets (folder, COCO, YOLO, Pascal VOC) and follow their progress.")
console = Console()

URL = typer.Option("http://127.0.0.1:8001", "--url", envvar="CORPUS_INGEST_URL", help="The ingest service")
KEY = typer.Option(None, "--key", envvar=["CORPUS_API_KEY", "CORPUS_ADMIN_KEY"], help="API key (Bearer)")

# The dataset formats the ingest service imports, as a choice: a typo is refused before an archive is uploaded.
ImportKind = StrEnum("ImportKind", {kind: kind for kind in KINDS})


def _headers(key: str | None) -> dict[str, str]:
    if not key:
        raise typer.BadParameter("an API key is needed: --key or CORPUS_API_KEY")
    return {"Authorization": f"Bearer {key}"}


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console
    )


async def _answer(response: aiohttp.ClientResponse) -> Any:
    body = await response.json(content_type=None)
    if response.status >= 400:
        print_problem(console, response.status, body)
        raise typer.Exit(1)
    return body


# Answers that say "not now" rather than "no": the service or a store it needs is busy or restarting,
# or a repeat arrived while the first attempt under the same key still runs.
RETRY_STATUSES = frozenset({409, 429, 502, 503, 504})
RETRY_FOR = typer.Option(600.0, "--retry-for", min=0, help="Seconds to keep retrying a request the service cannot take now")


class _NotNow(Exception):
    def __init__(self, status: int, detail: str, retry_after: float | None) -> None:
        super().__init__(f"{status}: {detail}")
        self.retry_after = retry_after


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _wait(state: RetryCallState) -> float:
    """The service's Retry-After when it gave one (at most a minute), else a back-off growing to 30 s."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, _NotNow) and error.retry_after is not None:
        return min(error.retry_after, 60.0)
    return wait_exponential(multiplier=1, max=30)(state)


async def post_until_answered(
    http: aiohttp.ClientSession, url: str, data: Callable[[], dict[str, Any]], *, retry_for: float, what: str
) -> Any:
    """POST under one Idempotency-Key, repeating it while the service cannot take it now (dropped connection,
    429/5xx, 409 in progress) for up to ``retry_for`` seconds. A repeat of a request that did run is answered
    with its first answer, so nothing is sent twice. ``data()`` gives the request's keyword arguments afresh
    for each attempt (a form cannot be sent twice)."""
    headers = {"Idempotency-Key": f"cli-{uuid.uuid4()}"}

    def tell(state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0
        error = state.outcome.exception() if state.outcome else None
        console.print(f"[yellow]{what}: {error or 'no answer'}; retrying in {wait:.0f} s[/yellow]")

    retrying = AsyncRetrying(
        stop=stop_after_delay(retry_for),
        wait=_wait,
        retry=retry_if_exception_type((_NotNow, aiohttp.ClientConnectionError, asyncio.TimeoutError)),
        before_sleep=tell,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                async with http.post(url, headers=headers, **data()) as response:
                    if response.status in RETRY_STATUSES:
                        body = await response.json(content_type=None)
                        raise _NotNow(response.status, body.get("detail") or body.get("title", ""), _retry_after(response))
                    return await _answer(response)
    except _NotNow as gave_up:
        console.print(f"[red]{what}: still refused after {retry_for:.0f} s: {gave_up}[/red]")
        raise typer.Exit(1) from None
    except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as gave_up:
        console.print(f"[red]{what}: no answer after {retry_for:.0f} s: {gave_up!r}[/red]")
        raise typer.Exit(1) from None


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        elif path.exists():
            raise typer.BadParameter(f"{path} is neither a file nor a folder (a pipe, socket or device); save it to a file first")
        else:
            raise typer.BadParameter(f"{path} does not exist")
    return found


def _report(results: list[dict[str, Any]]) -> None:
    outcomes = Counter(item["outcome"] for item in results)
    reasons = Counter(item["reason"] for item in results if item["outcome"] == "rejected")
    table = Table("outcome", "count")
    for outcome in ("created", "duplicate", "rejected"):
        table.add_row(outcome, str(outcomes.get(outcome, 0)))
    for reason, count in reasons.most_common():
        table.add_row(f"  rejected: {reason}", str(count))
    console.print(table)


async def _upload(
    files: list[Path], url: str, headers: dict[str, str], tags: str | None, source: str | None, batch: int, retry_for: float
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as http:
        with _progress() as progress:
            task = progress.add_task("uploading", total=len(files))
            for start in range(0, len(files), batch):
                chunk = files[start : start + batch]
                contents = [path.read_bytes() for path in chunk]

                def form() -> dict[str, Any]:
                    data = aiohttp.FormData()
                    for name, value in (("tags", tags), ("source", source)):
                        if value:
                            data.add_field(name, value)
                    for path, content in zip(chunk, contents, strict=True):
                        data.add_field("files", content, filename=path.name, content_type="application/octet-stream")
                    return {"data": data}

                what = f"files {start + 1}–{start + len(chunk)}"
                body = await post_until_answered(http, f"{url}/v1/images:batch", form, retry_for=retry_for, what=what)
                for item in body["items"]:
                    item["path"] = str(chunk[item["index"]])
                    results.append(item)
                    if item["outcome"] == "rejected":
                        progress.console.print(f"[yellow]rejected[/yellow] {item['path']}: {item['reason']} — {item.get('detail', '')}")
                progress.advance(task, len(chunk))
    return results


@ingest_app.command("files")
def ingest_files(
    paths: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)"),
    tags: str = typer.Option(None, help="Comma-separated tags for every image"),
    source: str = typer.Option(None, help="Where the images come from"),
    batch: int = typer.Option(32, min=1, max=500, help="Files per request"),
    retry_for: float = RETRY_FOR,
    url: str = URL,
    key: str = KEY,
) -> None:
    """Upload files in batches, with a progress bar; every rejection is printed with its reason.

    A batch the service cannot take now (a dropped connection, 429/5xx while a store restarts) is sent
    again under the same Idempotency-Key until it is answered, for up to --retry-for seconds."""
    files = _files(paths)
    results = asyncio.run(_upload(files, url.rstrip("/"), _headers(key), tags, source, batch, retry_for))
    _report(results)


@ingest_app.command("urls")
def ingest_urls(
    urls: list[str] = typer.Argument(..., help="http(s) URLs of images"),
    tags: str = typer.Option(None, help="Comma-separated tags"),
    retry_for: float = RETRY_FOR,
    url: str = URL,
    key: str = KEY,
) -> None:
    """Have the service fetch images by URL (public addresses only, unless allow-listed on the server)."""

    async def run() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession(headers=_headers(key)) as http:
            tag_list = [t for t in (tags or "").split(",") if t.strip()]
            results = []
            for start in range(0, len(urls), 100):
                body = {"urls": urls[start : start + 100], "tags": tag_list}
                answer = await post_until_answered(
                    http, f"{url.rstrip('/')}/v1/images:fetch", lambda body=body: {"json": body}, retry_for=retry_for, what="fetch"
                )
                results += answer["items"]
            return results

    results = asyncio.run(run())
    for item in results:
        colour = "green" if item["outcome"] != "rejected" else "yellow"
        console.print(f"[{colour}]{item['outcome']}[/{colour}] {item['url']} {item.get('id') or item.get('reason')}")
    _report(results)


async def follow(http: aiohttp.ClientSession, url: str, job: dict[str, Any], poll: float = 0.5) -> dict[str, Any]:
    with _progress() as progress:
        task = progress.add_task(f"import {job['dataset']}", total=job.get("total"))
        while True:
            async with http.get(f"{url}/v1/imports/{job['id']}") as response:
                job = await _answer(response)
            progress.update(task, total=job["total"], completed=job["processed"])
            if job["status"] in ("done", "failed"):
                return job
            await asyncio.sleep(poll)


# The warnings an import's table lists; it says how many more the job has (GET /v1/imports/{id} holds 100).
SHOWN_WARNINGS = 10


def _job_table(job: dict[str, Any]) -> None:
    table = Table("import", job["id"])
    table.add_row("status", job["status"])
    table.add_row("dataset", job["dataset"])
    table.add_row("total / processed", f"{job['total']} / {job['processed']}")
    for name, value in job["counts"].items():
        table.add_row(name, str(value))
    if job.get("error"):
        table.add_row("error", f"[red]{job['error']}[/red]")
    warnings = job.get("warnings", [])
    for warning in warnings[:SHOWN_WARNINGS]:
        table.add_row("warning", warning)
    if (more := job.get("warnings_total", len(warnings)) - min(len(warnings), SHOWN_WARNINGS)) > 0:
        table.add_row("warning", f"… and {more} more")
    console.print(table)


Send = Callable[[aiohttp.ClientSession, str], Awaitable[dict[str, Any]]]


def _queue_and_follow(send: Send, wait: bool, url: str, key: str | None, timeout: float | None = 300) -> None:
    """Queue an import with ``send`` (which answers the job), follow it if asked, print it; exit 1 if it failed."""

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession(headers=_headers(key), timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            job = await send(http, url.rstrip("/"))
            console.print(f"import {job['id']} queued")
            return await follow(http, url.rstrip("/"), job) if wait else job

    job = asyncio.run(run())
    _job_table(job)
    if job["status"] == "failed":
        raise typer.Exit(1)


def _start(kind: str, path: Path, dataset: str | None, tags: str | None, wait: bool, url: str, key: str | None) -> None:
    async def send(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
        body = {"kind": kind, "path": str(path.resolve()), "dataset": dataset, "tags": [t for t in (tags or "").split(",") if t.strip()]}
        return await post_until_answered(http, f"{base}/v1/imports", lambda: {"json": body}, retry_for=600, what="import")

    _queue_and_follow(send, wait, url, key)


def _kind_command(kind: str, help_text: str) -> None:
    @import_app.command(kind, help=help_text)
    def command(
        path: Path = typer.Argument(..., help="Path as the ingest server sees it (under CORPUS_IMPORT_ROOTS)"),
        dataset: str = typer.Option(None, help="Dataset name (default: the folder's name)"),
        tags: str = typer.Option(None, help="Comma-separated tags for every image"),
        wait: bool = typer.Option(True, help="Follow the progress until the import ends"),
        url: str = URL,
        key: str = KEY,
    ) -> None:
        _start(kind, path, dataset, tags, wait, url, key)


_kind_command("folder", "A folder tree of images; each image's parent folder is its class.")
_kind_command("coco", "COCO instances JSON (or a folder with annotations/instances.json and images/).")
_kind_command("yolo", "YOLO: images/ and labels/ with classes.txt or data.yaml.")
_kind_command("voc", "Pascal VOC: Annotations/*.xml and JPEGImages/.")


@import_app.command("archive")
def import_archive(
    archive: Path = typer.Argument(..., exists=True, dir_okay=False, help="A zip, tar, tar.gz, tar.bz2 or tar.xz on this machine"),
    kind: ImportKind = typer.Option(..., "--kind", help="The dataset's format"),
    path: str = typer.Option(None, help="Where the dataset starts inside the archive (default: its single top folder; '.' for its root)"),
    dataset: str = typer.Option(None, help="Dataset name (default: the archive's name without extension)"),
    tags: str = typer.Option(None, help="Comma-separated tags for every image"),
    wait: bool = typer.Option(True, help="Follow the progress until the import ends"),
    url: str = URL,
    key: str = KEY,
) -> None:
    """Upload a dataset archive and import it (for datasets that are not on the server's disk)."""

    async def send(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
        form = aiohttp.FormData()
        for name, value in {"kind": kind.value, "path": path, "dataset": dataset, "tags": tags}.items():
            if value:
                form.add_field(name, value)
        console.print(f"uploading {archive.name} ({archive.stat().st_size / 1e6:,.1f} MB)")
        with archive.open("rb") as handle:
            form.add_field("archive", handle, filename=archive.name, content_type="application/octet-stream")
            async with http.post(f"{base}/v1/imports:upload", data=form) as response:
                return await _answer(response)

    _queue_and_follow(send, wait, url, key, timeout=None)


@import_app.command("status")
def import_status(
    import_id: str = typer.Argument(..., help="The id `corpus import` printed (import … queued)"),
    wait: bool = typer.Option(False, help="Follow until it ends"),
    url: str = URL,
    key: str = KEY,
) -> None:
    """An import's status and counts."""

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession(headers=_headers(key)) as http:
            async with http.get(f"{url.rstrip('/')}/v1/imports/{import_id}") as response:
                job = await _answer(response)
            return await follow(http, url.rstrip("/"), job) if wait else job

    _job_table(asyncio.run(run()))


@ingest_app.command("orphans")
def orphan_blobs(
    older_than: float = typer.Option(3600, "--older-than", help="Seconds: younger blobs may belong to an upload committing now"),
    delete: bool = typer.Option(False, "--delete", help="Remove the orphans (without it: only count and list them)"),
) -> None:
    """Blobs in MinIO that no image document owns (left by a crash between blob and document): count or remove.

    Talks to MinIO and MongoDB directly with the CORPUS_* settings, like `corpus search reindex`.
    """
    from datetime import timedelta

    from services.ingest.orphans import remove_orphan_blobs
    from shared.clients.blobs import BlobStore
    from shared.clients.mongo import database, mongo_client
    from shared.settings import CorpusSettings, settings_or_exit

    async def run() -> dict[str, Any]:
        settings = settings_or_exit(CorpusSettings)
        client, blobs = mongo_client(settings), BlobStore(settings)
        try:
            report = await remove_orphan_blobs(blobs, database(client, settings), grace=timedelta(seconds=older_than), dry_run=not delete)
            return report.as_dict()
        finally:
            await blobs.close()
            await client.close()

    report = asyncio.run(run())
    table = Table("blobs", "count")
    for name in ("scanned", "owned", "too_young", "unrecognised", "orphans", "removed"):
        table.add_row(name.replace("_", " "), f"{report[name]:,}")
    console.print(table)
    for key in report["examples"]:
        console.print(f"  orphan: {key}")
    if report["raced"]:
        console.print(f"[red]re-ingest these images: their blob was removed as they arrived: {', '.join(report['raced'])}[/red]")
    if report["orphans"] and not delete:
        console.print("dry run: nothing removed; run again with --delete to remove the orphans")


@ingest_app.command("reband")
def reband_hashes(
    radius: int = typer.Option(None, "--radius", min=0, max=15, help="Default: CORPUS_NEAR_DUPLICATE_RADIUS"),
) -> None:
    """After CORPUS_NEAR_DUPLICATE_RADIUS changed: give the stored images the pHash bands of the new radius.

    Until then, images stored under the old radius are not found as near-duplicate candidates (the ingest service
    warns at start). Safe to stop and run again. Talks to MongoDB directly with the CORPUS_* settings.
    """
    from services.ingest.config import IngestSettings
    from services.ingest.rebanding import banded_otherwise, reband
    from shared.clients.mongo import database, mongo_client
    from shared.settings import settings_or_exit

    settings = settings_or_exit(IngestSettings)
    target = settings.near_duplicate_radius if radius is None else radius

    async def run() -> int:
        client = mongo_client(settings)
        try:
            db = database(client, settings)
            with _progress() as progress:
                task = progress.add_task(f"re-band for radius {target}", total=await banded_otherwise(db, target))
                report = await reband(db, target, progress=lambda n: progress.advance(task, n))
            return report.rebanded
        finally:
            await client.close()

    console.print(f"{asyncio.run(run()):,} image(s) re-banded for near-duplicate radius {target}")
