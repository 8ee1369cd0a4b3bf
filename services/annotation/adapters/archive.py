"""Export archives: a zip in a temporary file with the images and the annotation files.

Blobs are read from MinIO (thread pool, inside BlobStore); the zip is
written in a worker thread, so compression never blocks the event loop.
Photos and other binary members (PNG label images) are stored as they are
(already compressed), but for an EXIF orientation, set to "as stored"
(``domain/orientation.py``); text files are deflated.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from services.annotation.domain.errors import OriginalMissing
from services.annotation.domain.orientation import without_orientation
from shared.clients.blobs import BlobNotFound, BlobStore, original_key


async def build_zip(
    blobs: BlobStore,
    images: list[dict],
    folder: str,
    files: Mapping[str, str | bytes],
    paths: Mapping[str, list[str]] | None = None,
) -> Path:
    """Write ``files`` and every image to a new temporary zip; return its path.

    An image goes under ``folder/<file_name>``, or, when ``paths`` is given, under each of the member
    names it lists for the image's id (none: the image is left out).
    """
    handle, name = tempfile.mkstemp(prefix="corpus-export-", suffix=".zip")
    os.close(handle)
    path = Path(name)
    try:
        archive = await asyncio.to_thread(zipfile.ZipFile, path, "w", zipfile.ZIP_DEFLATED)
        try:
            for image in images:
                members = paths.get(image["id"], []) if paths is not None else [f"{folder}/{image['file_name']}"]
                if not members:
                    continue
                try:
                    data, _ = await blobs.fetch(original_key(image["sha256"]))
                except BlobNotFound:
                    raise OriginalMissing(
                        f"The original of image {image['id']!r} is not in object storage, so it cannot be exported; "
                        "ingest the file again (the same bytes restore it) or leave the image out.",
                        image_id=image["id"],
                    ) from None
                data = without_orientation(data)  # annotations are in the stored frame: every reader must see it
                for member in members:
                    await asyncio.to_thread(archive.writestr, member, data, zipfile.ZIP_STORED)
            for member, content in files.items():
                compression = zipfile.ZIP_STORED if isinstance(content, bytes) else None  # None: the archive's deflate
                await asyncio.to_thread(archive.writestr, member, content, compression)
        finally:
            await asyncio.to_thread(archive.close)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
