"""Building multipart uploads for the ingest API."""

from __future__ import annotations

import aiohttp


def image_form(data: bytes, filename: str = "photo.jpg", *, tags: str | None = None, source: str | None = None, **extra: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    if tags is not None:
        form.add_field("tags", tags)
    if source is not None:
        form.add_field("source", source)
    for name, value in extra.items():
        form.add_field(name, value)
    return form
