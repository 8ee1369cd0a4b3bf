"""Cursors and their snapshots (points in time), against the real Elasticsearch and MongoDB.

- A paging session that started before a reindex finishes on its snapshot: the replaced index is kept
  (retired) for the keep-alive and while a snapshot reads it, then dropped, by any process of the service.
- A cursor whose snapshot's index is gone is 410 ``cursor-expired``, not 503 ``store-unavailable``.
- Replaying one page-1 cursor reads one snapshot, and a caller's snapshots are bounded (the oldest closed).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.search import maintenance
from services.search.adapters.index import ImageIndex
from services.search.adapters.snapshots import SNAPSHOTS, Snapshots
from shared.cursors import decode_cursor as decode_value
from tests.conftest import RUN_ID
from tests.integration.search.helpers import index_photos, minimal_image, problem, run_job, search_json, three_photos

SOURCE = f"cursors-{RUN_ID}"


@pytest.fixture
async def indexed(search_client, mongo_db, bus):
    return await index_photos(search_client, mongo_db, bus, three_photos("cursors", SOURCE), SOURCE)


async def page(search_client, cursor: str | None = None) -> dict:
    return await search_json(search_client, sources=SOURCE, limit="1", **({"cursor": cursor} if cursor else {}))


async def test_a_paging_session_started_before_a_reindex_finishes_on_its_snapshot(search_client, es, indexed):
    first = await page(search_client)
    second = await page(search_client, first["next"])  # opens the snapshot, on the index the alias names now
    replaced = (await run_job(search_client, "/v1/admin/reindex"))["replaced"]
    assert replaced and all([await es.indices.exists(index=name) for name in replaced])  # kept for the snapshot
    third = await page(search_client, second["next"])  # was 503 store-unavailable: the old index was dropped
    end = await page(search_client, third["next"])
    assert end["next"] is None and end["items"] == []
    assert {item["image_id"] for p in (first, second, third) for item in p["items"]} == indexed


async def test_a_cursor_whose_index_was_dropped_is_410_not_an_outage(search_client, es, indexed):
    first = await page(search_client)
    second = await page(search_client, first["next"])
    replaced = (await run_job(search_client, "/v1/admin/reindex"))["replaced"]
    await es.indices.delete(index=",".join(replaced))  # as once its keep-alive has passed (or by hand)
    response = await search_client.get("/v1/search", params={"sources": SOURCE, "limit": "1", "cursor": second["next"]})
    body = await problem(response, 410)
    assert body["type"].endswith("/cursor-expired") and "first page" in body["detail"]
    assert "Retry-After" not in response.headers


async def test_replaying_a_page_1_cursor_reads_one_snapshot(search_client, es, indexed):
    """Each replay opened a snapshot of its own, alive for the keep-alive: a reader could hold any number."""
    first = await page(search_client)
    replays = [await page(search_client, first["next"]) for _ in range(4)]
    pits = {decode_value(replay["next"])["pit"] for replay in replays}
    assert len(pits) == 1  # one snapshot, and the same page 2 each time
    assert len({replay["items"][0]["image_id"] for replay in replays}) == 1
    third = await page(search_client, replays[0]["next"])
    assert (await page(search_client, third["next"]))["next"] is None  # the last page: it closed and forgot the snapshot

    again = await page(search_client, first["next"])
    assert decode_value(again["next"])["pit"] not in pits and again["items"] == replays[0]["items"]


async def test_a_caller_holds_a_bounded_number_of_snapshots_the_oldest_closed(projector, es, mongo_db):
    await projector.reader.images.insert_many([minimal_image(uuid.uuid4().hex * 2)])
    snapshots = Snapshots(mongo_db, projector.index, per_caller=2)
    await snapshots.ensure_indexes()
    caller, other = f"reader-{uuid.uuid4().hex}", f"other-{uuid.uuid4().hex}"
    theirs = await snapshots.open(other, "o")
    opened = [await snapshots.open(caller, f"origin-{n}") for n in range(3)]

    async def readable(pit: str) -> bool:
        response = await es.options(ignore_status=404).search(pit={"id": pit, "keep_alive": "1m"}, size=0)
        return response.meta.status == 200

    assert [await readable(pit) for pit in opened] == [False, True, True]  # the oldest closed in Elasticsearch
    assert await readable(theirs)  # another caller's are not this one's budget
    assert await mongo_db[SNAPSHOTS].count_documents({"caller": caller}) == 2
    assert await snapshots.for_cursor(caller, "origin-2") == opened[2]  # a replay of that cursor reads it again
    for pit in [*opened[1:], theirs]:
        await snapshots.close(pit)
    assert await mongo_db[SNAPSHOTS].count_documents({"caller": {"$in": [caller, other]}}) == 0


async def test_a_retired_index_is_dropped_after_its_keep_alive_once_no_snapshot_reads_it(projector, es):
    index = projector.index
    await projector.reader.images.insert_many([minimal_image(uuid.uuid4().hex * 2) for _ in range(2)])
    old = (await maintenance.reindex(projector))["index"]
    pit = await index.open_pit("5m")  # a paging session's snapshot, on ``old``
    rebuilt = await maintenance.reindex(projector)
    assert rebuilt["replaced"] == [old] and await es.indices.exists(index=old)
    kept_until = maintenance_time(rebuilt)
    # A process started afresh (the mark is in the index, not in memory) sweeps it:
    restarted = ImageIndex(es, index.alias.removesuffix("-images"), keep_alive=index.keep_alive)
    assert await restarted.drop_retired() == []  # its keep-alive has not passed
    later = kept_until + timedelta(seconds=1)
    assert await restarted.drop_retired(now=later) == [index.index]  # the first reindex's; a snapshot still reads ``old``
    await index.close_pit(pit)
    assert await restarted.drop_retired(now=later) == [old]
    assert not await es.indices.exists(index=old) and await es.indices.exists(index=rebuilt["index"])
    assert (await es.count(index=index.alias))["count"] == 2


async def test_the_next_reindex_drops_a_retired_index_whose_keep_alive_passed(projector, es):
    projector.index.keep_alive = "0s"  # retired indices are due at once
    await projector.reader.images.insert_many([minimal_image(uuid.uuid4().hex * 2)])
    first = await maintenance.reindex(projector)
    second = await maintenance.reindex(projector)
    assert second["replaced"] == [first["index"]] and second["left_behind_dropped"] == first["replaced"]
    third = await maintenance.reindex(projector)
    assert third["left_behind_dropped"] == [first["index"]] and not await es.indices.exists(index=first["index"])


def maintenance_time(result: dict):
    from datetime import datetime

    return datetime.fromisoformat(result["replaced_kept_until"])
