"""Ingesting by URL: fetch through the SSRF guard, then the common pipeline."""

from __future__ import annotations

from dataclasses import replace

from services.ingest.adapters.fetcher import FetchFailed, SafeFetcher
from services.ingest.domain.errors import ImageRefused
from services.ingest.rejecting import reject
from services.ingest.service import IngestDeps, Outcome, Submission, ingest
from shared.events import utcnow


async def ingest_url(
    deps: IngestDeps, fetcher: SafeFetcher, url: str, template: Submission, *, retryable: bool = False
) -> Outcome:
    """Fetch ``url`` and ingest it with ``template``'s metadata.

    Raises :class:`ImageRefused` after recording the rejection. With
    ``retryable``, a transient fetch failure (network, 5xx, timeout) is raised as
    :class:`FetchFailed` instead, unrecorded, so the caller can try again.
    """
    try:
        fetched = await fetcher.fetch(url)
    except FetchFailed as failed:
        if failed.transient and retryable:
            raise
        refused = ImageRefused(failed.reason, failed.message)
        await reject(deps, refused, source=url, filename=_name(url), origin=template.origin, uploader=template.uploader)
        raise refused from None
    origin = template.origin.model_copy(update={"uri": url, "fetched_at": utcnow()})
    submission = replace(template, data=fetched.data, filename=template.filename or _name(url), origin=origin, source=template.source or url)
    return await ingest(deps, submission)


def _name(url: str) -> str | None:
    tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return tail[:200] or None
