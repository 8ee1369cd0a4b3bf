"""The images index: an explicit, versioned mapping behind an alias.

Writes use external versioning (see ``domain.documents.external_version``), so
a replayed or late event never overwrites a newer state: Elasticsearch answers
409 and that counts as done. Writes go through the alias with
``require_alias``: if the index was lost, nothing is ever auto-created with a
guessed mapping; the alias is re-created empty and ``reconcile`` refills it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError

from services.search.adapters.mapping import MAPPING, MAPPING_VERSION, index_settings
from services.search.domain.durations import duration_seconds
from shared.outages import BUSY_STATUSES, DependencyUnavailable

log = logging.getLogger(__name__)

# In a replaced index's mapping ``_meta``: until when it is kept at least for the snapshots opened on it.
RETIRED_UNTIL = "retired_until"
# (document id, document, external version)
IndexAction = tuple[str, dict[str, Any], int]


class BulkWriteError(Exception):
    """Some documents could not be written for a reason other than a newer version in the index.

    ``refused`` names each (id → Elasticsearch's reason); ``outcome`` holds the batch's other documents,
    which were written (a bulk request writes document by document)."""

    def __init__(self, message: str, refused: dict[str, str] | None = None, outcome: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.refused = refused or {}
        self.outcome = outcome or {}


class IndexBusy(BulkWriteError, DependencyUnavailable):
    """Every document that was not written was turned away for load (429) or an unavailable shard (5xx)."""

    store = "Elasticsearch"


class ImageIndex:
    def __init__(
        self, es: AsyncElasticsearch, prefix: str, *, shards: int = 1, replicas: int = 0, keep_alive: str = "5m"
    ) -> None:
        self.es = es
        self.alias = f"{prefix}-images"
        self.index = f"{self.alias}-v{MAPPING_VERSION}"
        self.settings = index_settings(shards, replicas)
        self.keep_alive = keep_alive  # of the cursors' snapshots: how long a replaced index is kept for them

    @property
    def keep_alive_span(self) -> timedelta:
        """The cursors' keep-alive (an Elasticsearch time value such as ``5m``) as a span."""
        return timedelta(seconds=duration_seconds(self.keep_alive))

    async def ensure(self) -> None:
        """Create the current index and point the alias at it, unless the alias exists."""
        if await self.es.indices.exists_alias(name=self.alias):
            return
        if not await self.es.indices.exists(index=self.index):
            await self.es.options(ignore_status=400).indices.create(
                index=self.index, mappings=MAPPING, settings=self.settings
            )
        await self.es.indices.put_alias(index=self.index, name=self.alias)

    async def upsert(self, doc_id: str, document: dict[str, Any], version: int) -> bool:
        """Index a document at a version. False when the index already holds that version or newer."""
        try:
            await self.es.index(
                index=self.alias, id=doc_id, document=document, version=version, version_type="external"
            )
        except ConflictError:
            return False
        return True

    async def bulk_upsert(self, actions: Sequence[IndexAction], *, target: str | None = None) -> dict[str, str]:
        """Index many documents at their external versions: id → ``written`` | ``stale``."""
        if not actions:
            return {}
        operations: list[dict[str, Any]] = []
        for doc_id, document, version in actions:
            operations += [{"index": {"_id": doc_id, "version": version, "version_type": "external"}}, document]
        index = target or self.alias
        response = await self.es.bulk(index=index, operations=operations, require_alias=target is None)
        outcome: dict[str, str] = {}
        failures: dict[str, str] = {}
        busy = True
        for item in response["items"]:
            result = item["index"]
            status, doc_id = result["status"], result["_id"]
            if status < 300:
                outcome[doc_id] = "written"
            elif status == 409:
                outcome[doc_id] = "stale"
            else:
                failures[doc_id] = f"{result.get('error', {}).get('type')}: {result.get('error', {}).get('reason')}"
                busy = busy and status in BUSY_STATUSES
        if failures and target is None and any("index_not_found" in f for f in failures.values()):
            log.warning("the index behind %s is gone; re-creating it empty (run reconcile to refill)", self.alias)
            await self.ensure()
            return await self.bulk_upsert(actions)
        if failures:
            error = IndexBusy if busy else BulkWriteError
            examples = "; ".join(f"{doc_id}: {why}" for doc_id, why in list(failures.items())[:3])
            raise error(f"{len(failures)} document(s) not written: {examples}", failures, outcome)
        return outcome

    async def delete_many(self, ids: Sequence[str]) -> None:
        if ids:
            operations = [{"delete": {"_id": doc_id}} for doc_id in ids]
            await self.es.bulk(index=self.alias, operations=operations)

    async def versions(self, ids: Sequence[str]) -> dict[str, int]:
        """id → the version the index holds now, for those of ``ids`` it holds (read in real time, not searched)."""
        if not ids:
            return {}
        response = await self.es.mget(index=self.alias, ids=list(ids), source=False)
        return {doc["_id"]: doc["_version"] for doc in response["docs"] if doc.get("found")}

    async def search(self, body: dict[str, Any], *, pit: str | None = None, keep_alive: str = "5m") -> dict[str, Any]:
        if pit:
            response = await self.es.search(**body, pit={"id": pit, "keep_alive": keep_alive})
        else:
            response = await self.es.search(index=self.alias, **body)
        return response.body

    async def aggregate(self, query: dict[str, Any], aggs: dict[str, Any]) -> dict[str, Any]:
        """Aggregations only (no hits): answered from the shard request cache when repeated."""
        response = await self.es.search(
            index=self.alias, query=query, aggs=aggs, size=0, track_total_hits=False, request_cache=True
        )
        return response.body["aggregations"]

    async def close_pit(self, pit: str) -> None:
        """Close a snapshot no page will read again; one already gone (expired, closed) is no error."""
        await self.es.options(ignore_status=404).close_point_in_time(id=pit)

    async def open_pit(self, keep_alive: str) -> str:
        response = await self.es.open_point_in_time(index=self.alias, keep_alive=keep_alive)
        return response["id"]

    async def missing(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` that no longer exist."""
        return [name for name in names if not await self.es.indices.exists(index=name)]

    async def get_many(self, ids: Sequence[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        response = await self.es.mget(index=self.alias, ids=list(ids), source_includes=fields)
        return {doc["_id"]: doc["_source"] for doc in response["docs"] if doc.get("found")}

    async def scan(
        self, *, query: dict[str, Any] | None = None, fields: Sequence[str] = (), page: int = 5000
    ) -> AsyncIterator[dict[str, Any]]:
        """Every hit (with ``_version`` and the doc values of ``fields``), over a point in time."""
        pit = await self.open_pit("2m")
        after: list[Any] | None = None
        try:
            while True:
                body: dict[str, Any] = {
                    "query": query or {"match_all": {}},
                    "size": page,
                    "sort": ["_shard_doc"],
                    "_source": False,
                    "version": True,
                    "track_total_hits": False,
                }
                if fields:
                    body["docvalue_fields"] = list(fields)
                if after is not None:
                    body["search_after"] = after
                response = await self.es.search(**body, pit={"id": pit, "keep_alive": "2m"})
                pit = response.get("pit_id", pit)
                hits = response["hits"]["hits"]
                for hit in hits:
                    yield hit
                if len(hits) < page:
                    return
                after = hits[-1]["sort"]
        finally:
            await self.close_pit(pit)

    async def count(self) -> int:
        return (await self.es.count(index=self.alias))["count"]

    # Rebuilding: a fresh index filled from MongoDB, then one atomic alias switch.

    async def create_build_index(self) -> str:
        name = f"{self.index}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
        settings = {**self.settings, "refresh_interval": "-1"}
        await self.es.indices.create(index=name, mappings=MAPPING, settings=settings)
        return name

    async def finish_build(self, name: str) -> None:
        await self.es.indices.put_settings(index=name, settings={"index": {"refresh_interval": None}})
        await self.es.indices.refresh(index=name)

    async def switch_alias(self, name: str) -> list[str]:
        """Point the alias at ``name`` in one atomic call; returns the indices it left."""
        current = await self.es.options(ignore_status=404).indices.get_alias(name=self.alias)
        previous = [idx for idx in (current.body if current.meta.status == 200 else {}) if idx != name]
        actions: list[dict[str, Any]] = [{"remove": {"index": idx, "alias": self.alias}} for idx in previous]
        actions.append({"add": {"index": name, "alias": self.alias}})
        await self.es.indices.update_aliases(actions=actions)
        return previous

    async def _unaliased(self) -> dict[str, dict[str, Any]]:
        """Index name → its mapping's ``_meta``, for every index of this alias's names (``<alias>-v<N>`` or
        ``<alias>-v<N>-<build time>``: every name this alias has pointed at or a rebuild has built) that the
        alias does not point at. Empty while the alias points nowhere: ``ensure`` then adopts
        ``<alias>-v<N>``, which may hold the only copy of the data."""
        found = await self.es.options(ignore_status=404).indices.get_alias(index=f"{self.alias}-v*")
        indices = found.body if found.meta.status == 200 else {}
        if not any(self.alias in (entry.get("aliases") or {}) for entry in indices.values()):
            return {}
        ours = re.compile(rf"{re.escape(self.alias)}-v\d+(-\d{{20}})?")
        names = [name for name, entry in indices.items() if ours.fullmatch(name) and self.alias not in (entry.get("aliases") or {})]
        if not names:
            return {}
        mappings = await self.es.options(ignore_status=404).indices.get_mapping(index=",".join(names))
        found_mappings = mappings.body if mappings.meta.status == 200 else {}
        return {name: (found_mappings.get(name, {}).get("mappings") or {}).get("_meta") or {} for name in names}

    async def left_behind(self) -> list[str]:
        """The indices of this alias that earlier rebuilds left behind, retired ones (``retire``) apart: a
        rebuild that failed while Elasticsearch was away could not drop its build index, nor could one
        stopped between the alias switch and retiring the index it left.

        Safe to drop only while no rebuild runs (the maintenance job lock): a running one's build index is
        unaliased too."""
        return sorted(name for name, meta in (await self._unaliased()).items() if RETIRED_UNTIL not in meta)

    async def retire(self, names: Sequence[str], *, now: datetime | None = None) -> datetime | None:
        """Mark indices the alias has just left as kept for the cursors' snapshots opened on them: each
        until the keep-alive has passed and no snapshot is open on it (``drop_retired``). The mark is in
        the index itself, so it outlives this process. Returns until when they are kept at least."""
        if not names:
            return None
        until = (now or datetime.now(UTC)) + self.keep_alive_span
        await self.es.indices.put_mapping(index=",".join(names), meta={RETIRED_UNTIL: until.isoformat()})
        return until

    async def drop_retired(self, *, now: datetime | None = None) -> list[str]:
        """Drop the retired indices whose keep-alive has passed and on which no snapshot (point in time) is
        open any more; returns them. Needs no job lock: a retired index was the alias's and is never a
        rebuild's index, and no new snapshot can open on it (snapshots open through the alias)."""
        now = now or datetime.now(UTC)
        due = [
            name for name, meta in (await self._unaliased()).items()
            if RETIRED_UNTIL in meta and datetime.fromisoformat(meta[RETIRED_UNTIL]) <= now
        ]  # fmt: skip
        if not due:
            return []
        stats = await self.es.indices.stats(index=",".join(due), metric="search")
        idle = sorted(name for name in due if stats["indices"].get(name, {}).get("total", {}).get("search", {}).get("open_contexts", 0) == 0)
        await self.drop(idle)
        return idle

    async def drop(self, names: Sequence[str]) -> None:
        if names:
            await self.es.options(ignore_status=404).indices.delete(index=",".join(names))
