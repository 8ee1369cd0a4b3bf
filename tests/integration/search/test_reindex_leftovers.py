"""A rebuild's index left behind by a reindex that failed while Elasticsearch was away is dropped by the
next reindex, and nothing else is: not the live index, not an index the rebuild's name rule does not cover."""

from __future__ import annotations

import uuid

from services.search import maintenance
from tests.integration.search.helpers import minimal_image as image


async def indices_of(es, alias: str) -> dict[str, set[str]]:
    """index name → the aliases pointing at it, for every index under ``alias``."""
    found = await es.indices.get_alias(index=f"{alias}-*")
    return {name: set(entry.get("aliases") or {}) for name, entry in found.body.items()}


async def test_reindex_drops_the_build_index_a_failed_reindex_left_and_keeps_the_rest(projector, es):
    index = projector.index
    ids = [uuid.uuid4().hex * 2 for _ in range(3)]
    await projector.reader.images.insert_many([image(i) for i in ids])
    live = (await maintenance.reindex(projector))["index"]
    # As a reindex that could not drop its build (Elasticsearch went away mid-build) leaves it: empty, refresh off.
    stray = await index.create_build_index()
    unrelated = f"{index.alias}-v2-kept-by-hand"  # not a name a rebuild makes: never ours to drop
    await es.indices.create(index=unrelated)
    assert stray in await indices_of(es, index.alias)

    rebuilt = await maintenance.reindex(projector)

    after = await indices_of(es, index.alias)
    assert stray not in after and rebuilt["left_behind_dropped"] == [stray]
    # The live one is replaced as ever, not dropped first; it is kept (retired) for the cursors' keep-alive.
    assert rebuilt["replaced"] == [live] and live in after and after[live] == set()
    assert after[rebuilt["index"]] == {index.alias} and unrelated in after
    await es.indices.refresh(index=index.alias)
    assert (await es.count(index=index.alias))["count"] == len(ids)


async def test_nothing_counts_as_left_behind_while_the_alias_points_nowhere(projector, es):
    """``ensure`` adopts ``<alias>-v<N>`` when the alias is missing: it may hold the only copy of the data."""
    index = projector.index
    await es.indices.delete_alias(index=index.index, name=index.alias)
    await index.create_build_index()
    assert await index.left_behind() == []
