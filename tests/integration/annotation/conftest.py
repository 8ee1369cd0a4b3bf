"""Fixtures of the annotation tests: images placed in the ``images`` read model as ingest would."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import pytest

from shared.readmodels import ANNOTATION_SUMMARIES, IMAGES
from tests.conftest import eventually


def service_layer(db):
    """The annotation service layer on ``db`` whose drain moves pending changes only when told to
    (``deps.pending.drain``, ``sweep``, ``drain_all``): like a process that has not drained yet."""
    from concurrent.futures import ThreadPoolExecutor

    from services.annotation.adapters.annotations import AnnotationRepository
    from services.annotation.adapters.label_changes import LabelRepository
    from services.annotation.adapters.pending import PendingDrain
    from services.annotation.service import AnnotationDeps

    return AnnotationDeps(
        annotations=AnnotationRepository(db), labels=LabelRepository(db, "tests"), pending=PendingDrain.on_demand(db),
        cpu=ThreadPoolExecutor(1), producer="tests",
    )  # fmt: skip


async def add_image(db, width: int = 640, height: int = 480, *, data: bytes | None = None, filename: str | None = None) -> str:
    """An image document as ingest writes it (the blob too is the caller's business)."""
    sha = hashlib.sha256(data if data is not None else uuid.uuid4().bytes).hexdigest()
    await db[IMAGES].update_one(
        {"_id": sha},
        {"$setOnInsert": {
            "version": 1, "sha256": sha, "width": width, "height": height, "format": "JPEG", "mime": "image/jpeg",
            "bytes": len(data or b""), "mode": "RGB", "phash": "0" * 16, "dhash": "0" * 16, "tags": [],
            "source": "annotation-tests", "filename": filename, "created_at": datetime.now(UTC),
        }},  # fmt: skip
        upsert=True,
    )
    return sha


@pytest.fixture
async def undrained_db(base_settings, request):
    """A database of this test module's own, with the annotation indexes: the session's running annotation
    service does not drain (or sweep) it, so a test decides when a drain runs."""
    from services.annotation.adapters.store import ensure_indexes
    from shared.clients.mongo import mongo_client

    client = mongo_client(base_settings)
    name = f"{base_settings.mongo_db}_{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}"
    await ensure_indexes(client[name])
    yield client[name]
    await client.drop_database(name)
    await client.close()


@pytest.fixture
async def image_id(mongo_db) -> str:
    return await add_image(mongo_db)


def etag_of(response) -> str:
    return response.headers["ETag"]


async def summary_once(db, image_id: str, **expected) -> dict:
    """The image's summary once the drain has moved the pending changes into it and it holds ``expected``
    (field → value); fails, showing the last summary, if it never does."""

    async def holds():
        summary = await db[ANNOTATION_SUMMARIES].find_one({"_id": image_id}) or {}
        return summary if all(summary.get(k) == v for k, v in expected.items()) else None

    return await eventually(holds)
