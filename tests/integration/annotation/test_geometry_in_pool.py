"""Geometry checks that would hold up the event loop run in the worker pool: a large batch (an import event
carries hundreds of annotations), and any polygon or mask (rasterised by pycocotools). A 730-polygon import
event once kept the service from answering /readyz for seconds. The pool here is a real executor that
counts the batches it is given, and runs them."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

from services.annotation.service import create_many
from tests.integration.annotation.conftest import add_image, service_layer


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(1)
        self.batches = 0

    def submit(self, fn, /, *args, **kwargs):
        self.batches += 1
        return super().submit(fn, *args, **kwargs)


async def created_with_pool(mongo_db, items: list[dict]) -> tuple[list[dict], int]:
    pool = CountingPool()
    deps = dataclasses.replace(service_layer(mongo_db), cpu=pool)
    try:
        return await create_many(deps, "tests", items), pool.batches
    finally:
        pool.shutdown()


def box(image_id: str, x: int) -> dict:
    return {"image_id": image_id, "type": "bbox", "label": "pool", "bbox": [x, 10, 20, 20]}


async def test_a_large_batch_is_checked_in_the_worker_pool(mongo_db):
    image_id = await add_image(mongo_db, 640, 480)
    results, batches = await created_with_pool(mongo_db, [box(image_id, x) for x in range(100)])
    assert {r["status"] for r in results} == {201} and batches == 1


async def test_a_polygon_is_checked_in_the_worker_pool_and_a_few_boxes_inline(mongo_db):
    image_id = await add_image(mongo_db, 640, 480)
    polygon = {"image_id": image_id, "type": "polygon", "label": "pool", "polygon": [[10, 10, 50, 10, 50, 50], [30, 30, 70, 30, 70, 70]]}
    results, batches = await created_with_pool(mongo_db, [polygon])
    assert results[0]["status"] == 201 and batches == 1
    results, batches = await created_with_pool(mongo_db, [box(image_id, 1), box(image_id, 2)])
    assert [r["status"] for r in results] == [201, 201] and batches == 0
