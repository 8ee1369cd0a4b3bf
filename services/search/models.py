"""Response shapes of the search API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class SearchPage(BaseModel):
    """One page of search results."""

    total: int
    items: list[dict[str, Any]]
    # Pass as `cursor` to get the next page; null on the last page.
    next: str | None


class ImageDetail(BaseModel):
    """An image document from MongoDB, with a time-limited URL to its original."""

    id: str
    version: int
    sha256: str
    width: int
    height: int
    format: str
    mime: str
    bytes: int
    tags: list[str]
    source: str | None
    filename: str | None
    phash: str | None = None
    dhash: str | None = None
    created_at: datetime
    original_url: str
    urls_expire_at: datetime
