"""Helpers for search's integration tests: the read models written straight into MongoDB
(the way ingest and annotation write them), events published, jobs followed."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

from PIL import Image

from services.search.domain.hashing import hash_image
from shared.bus import Bus
from shared.events import Envelope, EventData, ImageIngested
from shared.readmodels import ANNOTATION_SUMMARIES, IMAGES
from tests.conftest import RUN_ID, eventually
from tests.photos import skimage_photo


async def publish(bus: Bus, *events: EventData) -> None:
    for event in events:
        await bus.publish(Envelope.wrap(event, producer="search-tests"))


def minimal_image(image_id: str, **extra) -> dict:
    """An ``images`` document with just what the projection needs, under a made-up id."""
    return {
        "_id": image_id, "version": 1, "sha256": image_id, "width": 64, "height": 48, "format": "PNG", "bytes": 10,
        "tags": ["maintenance"], "phash": "0" * 16, "dhash": "f" * 16, "created_at": datetime.now(UTC), **extra,
    }  # fmt: skip


def image_document(data: bytes, filename: str, *, source: str, tags: list[str], offset: int = 0, **extra) -> dict:
    """An ``images`` document as ingest writes it, hashes computed the way ingest computes them.

    A few bytes after the image's end (which decoders ignore) make its SHA-256, hence its id,
    this session's own: other tests that upload the same photo through ingest never meet it.
    """
    data = data + f"#search-tests {RUN_ID} {filename}".encode()
    sha = hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as image:
        width, height, fmt = image.width, image.height, image.format
    return {
        "_id": sha, "version": 1, "sha256": sha, "width": width, "height": height, "format": fmt,
        "mime": f"image/{fmt.lower()}", "bytes": len(data), "mode": "RGB", **hash_image(data),
        "tags": tags, "source": source, "filename": filename,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=offset), **extra,
    }


async def write_images(mongo_db, docs: list[dict]) -> None:
    await mongo_db[IMAGES].insert_many(docs)


async def write_summary(mongo_db, image_id: str, labels: dict[str, int], types: dict[str, int], version: int) -> None:
    await mongo_db[ANNOTATION_SUMMARIES].replace_one(
        {"_id": image_id},
        {"labels": labels, "types": types, "count": sum(labels.values()), "version": version, "updated_at": datetime.now(UTC)},
        upsert=True,
    )


async def search_json(client, **params) -> dict:
    response = await client.get("/v1/search", params=params)
    assert response.status == 200, await response.text()
    return await response.json()


async def all_ids(client, **params) -> set[str]:
    ids, cursor = set(), None
    while True:
        page = await search_json(client, limit="100", **params, **({"cursor": cursor} if cursor else {}))
        ids |= {item["image_id"] for item in page["items"]}
        cursor = page["next"]
        if not cursor:
            return ids


def three_photos(prefix: str, source: str) -> list[dict]:
    """Three photos created at 00:01, 00:02 and 00:03 on 2026-01-01, under file names (hence ids) of ``prefix``."""
    names = ["astronaut.png", "camera.png", "rocket.jpg"]
    return [image_document(skimage_photo(n), f"{prefix}_{n}", source=source, tags=[], offset=i + 1) for i, n in enumerate(names)]


async def index_photos(search_client, mongo_db, bus, photos: list[dict], source: str) -> set[str]:
    """``photos`` in MongoDB (written once, whichever test comes first) and in the index (announced again
    when another module's reindex or reconcile is still catching up); their ids."""
    for doc in photos:
        await mongo_db[IMAGES].replace_one({"_id": doc["_id"]}, doc, upsert=True)
    await publish(bus, *(ingested(doc) for doc in photos))

    async def all_there():
        return len(await all_ids(search_client, sources=source)) == len(photos)

    await eventually(all_there, timeout=60)
    return {doc["_id"] for doc in photos}


async def problem(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    return await response.json()


async def run_job(client, path: str, **params) -> dict:
    started = await client.post(path, params=params)
    assert started.status == 202, await started.text()
    job = await follow_job(client, started.headers["Location"])
    assert job["state"] == "succeeded", job
    return job["result"]


async def follow_job(client, location: str) -> dict:
    """The job at ``location`` once it has finished."""

    async def finished():
        job = await (await client.get(location)).json()
        return job if job["state"] != "running" else None

    return await eventually(finished, timeout=120)



def ingested(doc: dict) -> ImageIngested:
    """The ``image.ingested`` event ingest publishes with a document."""
    return ImageIngested(image_id=doc["_id"], **{k: v for k, v in doc.items() if k in ImageIngested.model_fields and k != "image_id"})
