"""``corpus annotation`` (labels, history, revert), ``corpus users`` (users, keys), ``corpus export`` and
``corpus import errors`` (an import's refused annotations):
the annotation service over HTTP. Address and key come from options or the environment
(``CORPUS_ANNOTATION_URL``, ``CORPUS_API_KEY``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import typer
from rich.console import Console
from rich.table import Table

from services.annotation.domain.model import ExportFormat
from services.cli.problems import print_problem
from shared.auth.rules import Role
from shared.naming import split_csv

annotation_app = typer.Typer(no_args_is_help=True, help="Labels, annotation history and revert.")
users_app = typer.Typer(no_args_is_help=True, help="Users, roles and API keys (admin).")
console = Console()

URL = typer.Option("http://127.0.0.1:8002", "--url", envvar="CORPUS_ANNOTATION_URL", help="The annotation service")
KEY = typer.Option(None, "--key", envvar=["CORPUS_API_KEY", "CORPUS_ADMIN_KEY"], help="API key (Bearer)")


async def _call(url: str, key: str | None, method: str, path: str, **kwargs: Any) -> tuple[Any, Any]:
    if not key:
        raise typer.BadParameter("an API key is needed: --key or CORPUS_API_KEY")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
        async with session.request(method, url.rstrip("/") + path, **kwargs) as response:
            if response.content_type == "application/zip":
                return await response.read(), response.headers.copy()
            body = await response.json(content_type=None)
            if response.status >= 400:
                print_problem(console, response.status, body)
                raise typer.Exit(1)
            return body, response.headers.copy()


def call(url: str, key: str | None, method: str, path: str, **kwargs: Any) -> Any:
    return asyncio.run(_call(url, key, method, path, **kwargs))[0]


@users_app.command("create")
def create_user(name: str, role: Role = typer.Option(..., help="What the user may do"), url: str = URL, key: str = KEY) -> None:
    """Create a user and issue its first API key (printed once)."""
    user = call(url, key, "POST", "/v1/users", json={"name": name, "role": role.value})
    issued = call(url, key, "POST", f"/v1/users/{user['id']}/keys", json={"label": "created by corpus users create"})
    console.print(f"user [bold]{user['id']}[/bold] ({user['role']})\nAPI key (shown once): [bold green]{issued['key']}[/bold green]")


@users_app.command("list")
def list_users(url: str = URL, key: str = KEY) -> None:
    """Every user: id, name, role and whether it is disabled."""
    table = Table("id", "name", "role", "disabled")
    for user in call(url, key, "GET", "/v1/users", params={"limit": "1000"})["items"]:
        table.add_row(user["id"], user["name"], user["role"], str(user["disabled"]))
    console.print(table)


@users_app.command("key")
def issue_key(
    user_id: str, label: str = typer.Option("", help="What the key is for (a machine, a script): a note kept with it"), url: str = URL, key: str = KEY
) -> None:
    """Issue another key for a user (printed once)."""
    issued = call(url, key, "POST", f"/v1/users/{user_id}/keys", json={"label": label})
    console.print(f"key id {issued['id']}\nAPI key (shown once): [bold green]{issued['key']}[/bold green]")


@users_app.command("revoke")
def revoke_key(user_id: str, key_id: str, url: str = URL, key: str = KEY) -> None:
    """Revoke one of a user's API keys (KEY_ID as `corpus users key` printed it): it stops working at once."""
    record = call(url, key, "DELETE", f"/v1/users/{user_id}/keys/{key_id}")
    console.print(f"revoked at {record['revoked_at']}")


def every_item(url: str, key: str | None, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """The items of a cursor-paginated listing, page after page."""
    cursor = None
    while True:
        page = call(url, key, "GET", path, params={**(params or {}), "limit": "1000", **({"cursor": cursor} if cursor else {})})
        yield from page["items"]
        if not (cursor := page["next"]):
            return


@annotation_app.command("labels")
def labels(url: str = URL, key: str = KEY) -> None:
    """Every label with its aliases and external ids."""
    table = Table("id", "name", "aliases", "external ids")
    for label in every_item(url, key, "/v1/labels"):
        table.add_row(label["id"], label["name"], ", ".join(label["aliases"]), str(label["external_ids"] or ""))
    console.print(table)


def import_errors(
    import_id: str = typer.Argument(..., help="The id `corpus import` printed (import … queued)"), url: str = URL, key: str = KEY
) -> None:
    """The annotations of an import that the annotation service refused, with the reason (--url: the annotation service)."""
    table = Table("image", "source id", "reason", "detail")
    for record in every_item(url, key, "/v1/import-errors", {"import_id": import_id}):
        table.add_row(record["image_id"], record["source_id"], record["reason"], record["detail"])
    if table.row_count:
        console.print(table)
    console.print(f"{table.row_count} annotation(s) of import {import_id} refused")


@annotation_app.command("history")
def history(annotation_id: str, url: str = URL, key: str = KEY) -> None:
    """Every version of an annotation: who, when, what changed."""
    table = Table("version", "action", "by", "at", "changed")
    for entry in call(url, key, "GET", f"/v1/annotations/{annotation_id}/history", params={"limit": "1000"})["items"]:
        table.add_row(str(entry["version"]), entry["action"], entry["changed_by"], entry["changed_at"], ", ".join(entry["changes"]))
    console.print(table)


@annotation_app.command("revert")
def revert(annotation_id: str, version: int, url: str = URL, key: str = KEY) -> None:
    """Make a new version equal to VERSION (uses the current ETag, so a concurrent edit is not overwritten)."""

    async def run() -> Any:
        _, headers = await _call(url, key, "GET", f"/v1/annotations/{annotation_id}")
        return (await _call(url, key, "POST", f"/v1/annotations/{annotation_id}/revert", json={"version": version}, headers={"If-Match": headers["ETag"]}))[0]

    doc = asyncio.run(run())
    console.print(f"annotation {doc['id']} is now at version {doc['version']} (equal to version {version})")


def export(
    out: Path = typer.Option(..., "--out", help="The zip file to write"),
    fmt: ExportFormat = typer.Option(
        "coco",
        "--format",
        help="coco, yolo (boxes), yolo-seg (polygons and masks as outlines), yolo-pose (boxes with their keypoints), "
        "voc (boxes, segmentation PNGs) or imagefolder (each image under a folder per class it has)",
    ),
    image_id: list[str] = typer.Option(None, "--image-id", help="An image to export (repeatable)"),
    dataset: str = typer.Option(None, "--dataset", help="Or: every image with annotations from this dataset"),
    search: str = typer.Option(
        None, "--search", help="Or: every image a search matches, as search's query string, e.g. 'labels=person&min_width=640'"
    ),
    classes: str = typer.Option(
        None, "--classes", help='Label names in class order, comma-separated ("quote, a name" holding a comma): '
        "the same numbering for every export (train, val)",
    ),
    url: str = URL,
    key: str = KEY,
) -> None:
    """Download images with their annotations as COCO, YOLO, YOLO segmentation or pose, Pascal VOC or an image folder (a zip)."""
    _check_out(out)
    body = {"format": fmt, "image_ids": image_id or None, "dataset": dataset}
    if classes is not None:
        body["classes"] = split_csv(classes)
    if search is not None:
        body["search"] = _search_query(search)
    data = call(url, key, "POST", "/v1/exports", json=body, timeout=aiohttp.ClientTimeout(total=3600))
    out.write_bytes(data)
    console.print(f"wrote {out} ({len(data):,} bytes)")


def _check_out(out: Path) -> None:
    """Before the download, not after: an export can take minutes, and a typo in the folder would waste them."""
    if out.is_dir():
        raise typer.BadParameter(f"{out} is a folder; give the zip file's name, e.g. {out / 'export.zip'}", param_hint="--out")
    if not out.parent.is_dir():
        raise typer.BadParameter(f"the folder {out.parent} does not exist; create it first or choose another", param_hint="--out")


def _search_query(search: str) -> dict[str, str]:
    """``--search`` as search's parameters, each value as given (blank ones too: search decides on them). A name
    given twice is refused, as search refuses it: keeping one value would export something other than asked."""
    try:
        pairs = parse_qsl(search.lstrip("?"), keep_blank_values=True, strict_parsing=bool(search.strip("?")))
    except ValueError:
        raise typer.BadParameter(f"--search {search!r} is not a query string such as 'labels=person&min_width=640'") from None
    repeated = sorted({name for name, _ in pairs if sum(1 for other, _ in pairs if other == name) > 1})
    if repeated:
        raise typer.BadParameter(
            f"--search gives {', '.join(repeated)} more than once; give each once, a list comma-separated (labels=zebra,giraffe)"
        )
    return dict(pairs)
