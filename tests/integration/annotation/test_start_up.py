"""The annotation service's start-up against transactions a killed process left open."""

from __future__ import annotations

import asyncio
import uuid

from services.annotation.adapters.store import ANNOTATIONS, ensure_indexes
from shared.clients.mongo import mongo_client

# Far below the 60 s MongoDB keeps an abandoned transaction's locks (transactionLifetimeLimitSeconds), far above
# what the index set-up takes when nothing waits: a bound for a broken run, not a speed measure.
BOUND_SECONDS = 20


async def test_index_set_up_does_not_wait_behind_transactions_a_killed_process_left_open(base_settings):
    """A process killed mid-transaction leaves it open, holding its collections' intent locks until MongoDB
    aborts it; a restart's index set-up must not queue for an exclusive lock behind it (it did, for 60-80 s,
    dropping an import key that was long gone)."""
    client = mongo_client(base_settings)
    db = client[f"{base_settings.mongo_db}_restart_{uuid.uuid4().hex[:6]}"]
    session = client.start_session()
    try:
        await ensure_indexes(db)  # the killed process's start-up: every index is there already
        await session.start_transaction()
        for name in await db.list_collection_names():  # every collection start-up indexes, annotations among them
            await db[name].insert_one({"_id": f"abandoned-{uuid.uuid4().hex}"}, session=session)
        await asyncio.wait_for(ensure_indexes(db), BOUND_SECONDS)
        assert "dataset_1_image_id_1_source_id_1" in await db[ANNOTATIONS].index_information()
    finally:
        if session.in_transaction:
            await session.abort_transaction()
        await session.end_session()
        await client.drop_database(db.name)
        await client.close()
