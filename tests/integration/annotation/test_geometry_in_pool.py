"""Geometry checks that would hold up the event loop run in the worker pool: a large batch (an import event
carries hundreds of annotations), and any polygon or mask (rasterised by pycocotools). A 730-polygon import
event once kept the service from answering /readyz for seconds. The pool here is a real executor that
counts the batches it is given, and runs them."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest

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


async def test_a_polygon_of_many_vertices_is_checked_in_the_worker_pool_and_a_small_one_inline(mongo_db):
    import math

    image_id = await add_image(mongo_db, 640, 480)
    ring = [v for k in range(1200) for v in (320 + 200 * math.cos(k * math.tau / 1200), 240 + 200 * math.sin(k * math.tau / 1200))]
    detailed = {"image_id": image_id, "type": "polygon", "label": "pool", "polygon": [ring]}
    results, batches = await created_with_pool(mongo_db, [detailed])
    assert results[0]["status"] == 201 and batches == 1
    # An interactive create stays on the loop: the pool's round trip would cost more than the check.
    small = {"image_id": image_id, "type": "polygon", "label": "pool", "polygon": [[10, 10, 50, 10, 50, 50], [30, 30, 70, 30, 70, 70]]}
    results, batches = await created_with_pool(mongo_db, [small, box(image_id, 1), box(image_id, 2)])
    assert [r["status"] for r in results] == [201, 201, 201] and batches == 0


def _die() -> None:
    import os

    os._exit(9)  # as a worker killed for its memory: no answer, no exception


def _square(x: int) -> int:
    return x * x


def test_a_worker_that_dies_fails_its_job_as_an_outage_and_the_pool_replaces_itself():
    """A ProcessPoolExecutor with a dead worker fails every later job: polygon creates answered 500 and
    import events with polygons were parked until a restart."""
    from concurrent.futures.process import BrokenProcessPool

    from services.annotation.adapters.workers import RenewingProcessPool

    pool = RenewingProcessPool(1)
    try:
        with pytest.raises(BrokenProcessPool):
            pool.submit(_die).result(timeout=60)
        assert pool.submit(_square, 7).result(timeout=60) == 49 and pool.renewed == 1
    finally:
        pool.shutdown()
