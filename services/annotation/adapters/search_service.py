"""The search service, asked over HTTP which images a search matches (export by search query).

The caller's own ``Authorization`` is passed on, so search applies its role rules to the
caller, not to this service. Search's answers become problems the caller can act on: its
400s (a bad parameter) as 422 with search's own detail, more matches than an export may hold
as 413, and search being down as 503.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared.problems import Problem, problem_type

PAGE = 100
# Parameters the export owns: it pages through every match itself.
RESERVED = ("limit", "cursor", "facets")


class SearchService:
    def __init__(self, base_url: str, *, timeout_seconds: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds))

    async def close(self) -> None:
        await self._session.close()

    async def matching_image_ids(self, query: Mapping[str, Any], authorization: str | None, limit: int) -> list[str]:
        """Every image id the search matches, in the search's order; 413 when more than ``limit`` match."""
        if reserved := [name for name in RESERVED if name in query]:
            raise Problem(
                422, "Invalid search", f"The export pages through every match itself; leave out {', '.join(reserved)}.",
                type_=problem_type("invalid-search"),
            )  # fmt: skip
        params = {name: _text(value) for name, value in query.items()}
        headers = {"Authorization": authorization} if authorization else {}
        ids: list[str] = []
        cursor: str | None = None
        while True:
            page = await self._page({**params, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}, headers)
            if cursor is None and (page["total"] > limit or page.get("total_relation") == "gte"):
                more = "more than " if page.get("total_relation") == "gte" else ""
                raise Problem(
                    413, "Too many images",
                    f"The search matches {more}{page['total']:,} images; export at most {limit:,} at once. Narrow the search.",
                    type_=problem_type("too-many-images"), matched=page["total"],
                )  # fmt: skip
            ids.extend(item["image_id"] for item in page["items"])
            cursor = page.get("next")
            if not cursor or len(ids) >= limit:
                return list(dict.fromkeys(ids))[:limit]

    async def _page(self, params: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(aiohttp.ClientConnectionError),
                stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.1, max=1), reraise=True,
            ):  # fmt: skip
                with attempt:
                    async with self._session.get(f"{self.base_url}/v1/search", params=params, headers=headers) as response:
                        body = await response.json(content_type=None)
                        status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Problem(
                503, "Search unavailable",
                f"The search service at {self.base_url} did not answer ({type(exc).__name__}); try again.",
                type_=problem_type("search-unavailable"), headers={"Retry-After": "5"},
            ) from None  # fmt: skip
        if status == 200:
            return body
        problem = body if isinstance(body, dict) else {}
        detail = problem.get("detail")
        if status == 400:
            raise Problem(422, "Invalid search", detail or "The search service refused the query.", type_=problem_type("invalid-search"))
        if status in (401, 403):
            raise Problem(status, problem.get("title", "Forbidden"), detail, type_=problem.get("type", "about:blank"))
        raise Problem(
            503, "Search unavailable", f"The search service answered {status}: {detail or 'no detail'}.",
            type_=problem_type("search-unavailable"), headers={"Retry-After": "5"},
        )  # fmt: skip


def _text(value: Any) -> str:
    """A query-string value: lists become search's comma lists, booleans true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(part) for part in value)
    return str(value)
