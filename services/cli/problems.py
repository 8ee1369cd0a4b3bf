"""How every ``corpus`` command shows a service's refusal: its problem details (RFC 9457), errors included."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


def print_problem(console: Console, status: int, body: Any) -> None:
    """The status, title and detail on one line, then each of the problem's ``errors`` (a 422's fields that do
    not match the schema) on a line of its own: the detail alone says only "see 'errors'"."""
    if not isinstance(body, dict):  # not problem details (a proxy's page, say): shown as it came
        console.print(f"[red]{status}[/red]: {escape(str(body))}")
        return
    console.print(f"[red]{status} {escape(str(body.get('title', '')))}[/red]: {escape(str(body.get('detail', body)))}")
    for error in body.get("errors") or []:
        console.print(f"  {escape(_error_line(error))}")


def _error_line(error: Any) -> str:
    """``role: Input should be 'admin', …``: where in the request (the path of ``loc``), then what is wrong."""
    if not isinstance(error, dict):
        return str(error)
    where = ".".join(str(part) for part in error.get("loc") or [])
    return f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", error))
