"""A service killed with SIGKILL leaves no processes behind: its pool workers, and with them the forkserver
and the resource tracker, leave by themselves (``shared.owner_watch``). They used to stay, re-parented to
init, four more with every kill of the annotation service."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import pytest

from shared.owner_watch import process_identity
from tests.conftest import ADMIN
from tests.photos import skimage_photo, unique_png
from tests.processes import ServiceProcess, children, command_line, descendants, is_running
from tests.uploads import image_form

GONE_WITHIN_SECONDS = 30  # a bound for a broken run: the workers check on their service every second


async def upload(http: aiohttp.ClientSession, ingest: ServiceProcess) -> dict:
    """An image stored by ingest (decoded and hashed in its worker pool)."""
    async with http.post(f"{ingest.url}/v1/images", data=image_form(unique_png(skimage_photo("astronaut.png")))) as r:
        assert r.status == 201, await r.text()
        return await r.json()


async def annotate_in_pool(http: aiohttp.ClientSession, annotation: ServiceProcess, image_id: str) -> None:
    """More boxes than are checked inline: the batch's geometry goes to the worker pool."""
    items = [{"image_id": image_id, "type": "bbox", "label": "workers", "bbox": [x, 10, 20, 20]} for x in range(40)]
    async with http.post(f"{annotation.url}/v1/annotations/bulk", json={"items": items}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["created"] == len(items)


async def hash_in_pool(http: aiohttp.ClientSession, search: ServiceProcess) -> None:
    """A query image is hashed in the search service's worker pool."""
    form = aiohttp.FormData()
    form.add_field("file", skimage_photo("astronaut.png"), filename="query.png", content_type="image/png")
    async with http.post(f"{search.url}/v1/search/similar", data=form) as r:
        assert r.status == 200, await r.text()


async def use_the_worker_pool(name: str, services: dict[str, ServiceProcess]) -> None:
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        stored = await upload(http, services["ingest"])
        if name == "annotation":
            await annotate_in_pool(http, services[name], stored["id"])
        elif name == "search":
            await hash_in_pool(http, services[name])


def pool_workers(pid: int) -> set[int]:
    """The service's pool workers: the forkserver's children."""
    forkservers = {child for child in children(pid) if "multiprocessing.forkserver" in command_line(child)}
    return {worker for forkserver in forkservers for worker in children(forkserver)}


async def still_running(pids: set[int]) -> dict[int, str]:
    """Those of ``pids`` still running once they have all stopped or the bound has passed."""
    deadline = asyncio.get_running_loop().time() + GONE_WITHIN_SECONDS
    while True:
        running = {pid: command_line(pid) for pid in pids if is_running(pid)}
        if not running or asyncio.get_running_loop().time() > deadline:
            return running
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("name", ["annotation", "ingest", "search"])
async def test_a_killed_service_leaves_no_processes_behind(services, name):
    service = services[name]
    await use_the_worker_pool(name, services)
    assert service.proc is not None
    assert pool_workers(service.proc.pid), "the pool has no workers: nothing would be left behind to find"
    former = {pid: process_identity(pid) for pid in descendants(service.proc.pid)}
    try:
        service.proc.kill()  # SIGKILL: no shutdown reaches the pool
        service.proc.wait()
        assert await still_running(set(former)) == {}
    finally:
        for pid, identity in former.items():  # none left to the next test, and no other process killed
            if identity is not None and process_identity(pid) == identity:
                os.kill(pid, signal.SIGKILL)
        await service.start()  # the session's other tests go on with it
