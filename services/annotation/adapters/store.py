"""Collection names, indexes and the transaction helper of the annotation service."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from shared.auth.guard import API_KEYS, USERS
from shared.outbox import ensure_outbox_indexes
from shared.readmodels import ANNOTATION_SUMMARIES

LABELS = "labels"
LABEL_NAMES = "label_names"  # _id: a normalised name or alias → label_id: one name, one label
ANNOTATIONS = "annotations"  # current state, deleted ones kept as tombstones (their history goes on)
HISTORY = "annotation_history"  # one document per version: full state, who, when, what changed
IMPORT_ERRORS = "annotation_import_errors"
LABEL_MOVES = "label_moves"  # renames and merges whose annotations are still moving (adapters/label_moves.py)
# Inside an annotation: changes written with its state, not yet moved into history, summaries and the
# outbox (adapters/pending.py), and their count, indexed where above zero so the drain finds them.
PENDING = "pending"
PENDING_COUNT = "pending_n"
OLD_IMPORT_KEY = "dataset_1_source_id_1"  # unique (dataset, source_id): dropped at start-up if still there
INDEX_NOT_FOUND = 27


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[LABELS].create_index([("parent_id", ASCENDING)])
    await db[LABEL_NAMES].create_index([("label_id", ASCENDING)])
    annotations = db[ANNOTATIONS]
    await annotations.create_index([("image_id", ASCENDING), ("deleted", ASCENDING)])
    await annotations.create_index([("label_id", ASCENDING)])
    await ensure_import_key(annotations)
    await annotations.create_index(
        [(PENDING_COUNT, ASCENDING)], name="pending", partialFilterExpression={PENDING_COUNT: {"$gt": 0}}
    )
    await db[HISTORY].create_index([("annotation_id", ASCENDING), ("version", ASCENDING)], unique=True)
    await db[HISTORY].create_index([("image_id", ASCENDING), ("changed_at", DESCENDING)])
    await db[IMPORT_ERRORS].create_index([("import_id", ASCENDING)])
    for field in ("import_id", "dataset"):  # GET /v1/import-errors pages by _id within one of them
        await db[IMPORT_ERRORS].create_index([(field, ASCENDING), ("_id", ASCENDING)])
    await db[API_KEYS].create_index([("user_id", ASCENDING)])
    await db[USERS].create_index([("role", ASCENDING)])
    await db[ANNOTATION_SUMMARIES].create_index([("updated_at", DESCENDING)])
    await ensure_outbox_indexes(db)


async def ensure_import_key(annotations: AsyncCollection) -> None:
    """Imports are idempotent: one annotation per (dataset, image_id, source_id). The key once left out the
    image, and a second import under the same dataset name lost its annotations to the first one's: the
    new index is built before the old one goes, so uniqueness never lapses. Instances starting together
    build the same index (MongoDB lets the later request wait for the build), and one of them finds the old
    index gone already."""
    await annotations.create_index(
        [("dataset", ASCENDING), ("image_id", ASCENDING), ("source_id", ASCENDING)],
        unique=True,
        partialFilterExpression={"source_id": {"$type": "string"}},
    )
    await drop_old_import_key(annotations)


async def drop_old_import_key(annotations: AsyncCollection) -> None:
    """Drop the old key if it is still there, and only then: dropIndexes takes the collection's exclusive lock
    even for an index that is gone, so it waits behind every open transaction on the collection, and those a
    killed process left hold their locks until MongoDB aborts them (transactionLifetimeLimitSeconds, 60 s):
    a restart after a kill -9 sat in start-up that long. Listing the indexes takes no such lock. (Creating an
    index that exists with the same spec returns at once too, so the other start-up indexes need no check.)"""
    if OLD_IMPORT_KEY not in await annotations.index_information():
        return
    try:
        await annotations.drop_index(OLD_IMPORT_KEY)
    except OperationFailure as exc:
        if exc.code != INDEX_NOT_FOUND:  # another instance starting beside this one dropped it first
            raise


def without_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}
