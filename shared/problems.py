"""RFC 9457 problem details: the one shape every HTTP error takes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise from a view (or the domain, through a view) to answer with problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body

    def to_response(self, instance: str | None = None) -> web.Response:
        return web.json_response(
            self.to_dict(instance), status=self.status, content_type=PROBLEM_CONTENT_TYPE, headers=self.headers
        )


def problem_type(slug: str) -> str:
    """A stable URI naming a kind of problem, documented in the README."""
    return f"https://image-corpus.dev/problems/{slug}"
