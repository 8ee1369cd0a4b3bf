"""Export archives: a zip in a temporary file with the images and the annotation files.

Blobs are read from MinIO (thread pool, inside BlobStore); the zip is
written in worker threads, so compression never blocks the event loop.
Photos and other binary members (PNG label images) are stored as they are
(already compressed), but for an EXIF orientation, set to "as stored"
(``domain/orientation.py``); text files are deflated. A text member can be
written as it is made (:meth:`ExportZip.write_text`), so a large one never
sits whole in memory, and files can be added a few at a time
(:meth:`ExportZip.add_files`: a page of images' label files).

The zip is staged on disk, not streamed to the client as it is made: its
size is the response's ``Content-Length`` (a client, or a proxy, knows a cut
download for what it is), and an export that fails half-way (an original
missing from object storage, a store going away) is answered with a problem
instead of a truncated zip behind a 200.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import zipfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from services.annotation.domain.errors import OriginalMissing
from services.annotation.domain.orientation import without_orientation
from shared.clients.blobs import BlobNotFound, BlobStore, original_key


class ExportZip:
    """A zip being written; every write happens in a worker thread, one at a time."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self.path = path
        self._zip = archive

    async def add_images(self, blobs: BlobStore, images: list[dict], folder: str, paths: Mapping[str, list[str]] | None = None) -> None:
        """Every image under ``folder/<file_name>``, or, when ``paths`` is given, under each of the member
        names it lists for the image's id (none: the image is left out)."""
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
                await asyncio.to_thread(self._zip.writestr, member, data, zipfile.ZIP_STORED)

    async def add_files(self, make: Callable[[], Mapping[str, str | bytes]]) -> None:
        """The files ``make`` makes (member name → content), made and written in one worker thread: making
        them (rasterising masks, tracing outlines) is CPU work too."""
        await asyncio.to_thread(self._add_files, make)

    def _add_files(self, make: Callable[[], Mapping[str, str | bytes]]) -> None:
        for member, content in make().items():
            compression = zipfile.ZIP_STORED if isinstance(content, bytes) else None  # None: the archive's deflate
            self._zip.writestr(member, content, compression)

    async def write_text(self, name: str, pieces: AsyncIterable[Callable[[], str]]) -> None:
        """A deflated text member made of ``pieces``: each is called (it renders its text) and written in
        a worker thread as it comes, so only one piece of the member is in memory at a time."""
        member = await asyncio.to_thread(self._zip.open, name, "w")
        try:
            async for piece in pieces:
                await asyncio.to_thread(_write, member, piece)
        finally:
            await asyncio.to_thread(member.close)


def _write(member: IO[bytes], piece: Callable[[], str]) -> None:
    member.write(piece().encode())


@asynccontextmanager
async def export_zip() -> AsyncIterator[ExportZip]:
    """A new zip in a temporary file, closed when the block ends (its ``path`` is then the caller's to
    remove), removed if the block fails."""
    handle, name = tempfile.mkstemp(prefix="corpus-export-", suffix=".zip")
    os.close(handle)
    path = Path(name)
    try:
        archive = await asyncio.to_thread(zipfile.ZipFile, path, "w", zipfile.ZIP_DEFLATED)
        try:
            yield ExportZip(path, archive)
        finally:
            await asyncio.to_thread(archive.close)
    except BaseException:
        path.unlink(missing_ok=True)
        raise

