"""Blob storage in MinIO under content-addressed keys.

Writes, the hot path of ingest, are asynchronous: the ``minio`` SDK signs a
short-lived PUT URL (local computation) and aiohttp sends the bytes with
their SHA-256 in ``x-amz-checksum-sha256``, which MinIO verifies before it
stores anything and keeps with the object. That costs a fraction of the
SDK's own synchronous ``put_object`` (no worker thread, no payload hashing
for the signature) and still proves the stored bytes are the ones sent.
Everything else goes through the synchronous SDK in a bounded thread pool,
never on the event loop. Keys are derived from the SHA-256 of the bytes, so
putting the same blob twice is harmless.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from shared.outages import DependencyUnavailable
from shared.settings import CorpusSettings

# Signed PUT URLs only need to outlive the request they are made for.
PUT_URL_TTL = timedelta(minutes=15)


class BlobWriteError(Exception):
    """MinIO refused a write (the status and its S3 error document say why)."""


class BlobStoreUnavailable(BlobWriteError, DependencyUnavailable):
    """MinIO did not answer, or answered that it cannot serve now (5xx): worth retrying, not the data's fault."""

    store = "MinIO"


class BlobNotFound(Exception):
    """No object has this key (never written, or removed)."""


# S3 error codes that say the server, not the request, is the trouble.
UNAVAILABLE_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "XMinioServerNotInitialized", "XMinioStorageFull"})


class StoredObject(NamedTuple):
    key: str
    size: int
    etag: str
    modified: datetime | None


class Downloaded(NamedTuple):
    sha256: str
    size: int
    content_type: str


def original_key(sha256: str) -> str:
    return f"originals/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def thumbnail_key(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256[2:4]}/{sha256}.jpg"


def minio_client(settings: CorpusSettings, endpoint: str | None = None) -> Minio:
    """A MinIO SDK client for the configured store (or another host:port of it).

    The region is given so the SDK never asks the server for it.
    """
    return Minio(
        endpoint or settings.minio_endpoint,
        access_key=settings.minio_access_key,
        secret_key=settings.minio_secret_key,
        secure=settings.minio_secure,
        region=settings.minio_region,
    )


class BlobStore:
    def __init__(self, settings: CorpusSettings) -> None:
        self.bucket = settings.minio_bucket
        self._endpoint = settings.minio_endpoint
        self._ttl = timedelta(seconds=settings.presign_ttl_seconds)
        self._client = minio_client(settings)
        # Presigned URLs are signed for the host clients will use.
        self._signer = minio_client(settings, settings.minio_public_endpoint or settings.minio_endpoint)
        self._pool = ThreadPoolExecutor(max_workers=settings.blob_threads, thread_name_prefix="blobs")
        self._connections = settings.blob_connections
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300)
            self._http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300, sock_connect=10))
        return self._http

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))
        except urllib3.exceptions.HTTPError as exc:  # the SDK's own retries ran out: refused, reset, timed out
            raise BlobStoreUnavailable(f"MinIO at {self._endpoint} does not answer: {exc}") from exc
        except S3Error as exc:
            if exc.code in UNAVAILABLE_CODES:
                raise BlobStoreUnavailable(f"MinIO cannot serve now: {exc.code}: {exc.message}") from exc
            raise

    async def ensure_bucket(self) -> None:
        if not await self._run(self._client.bucket_exists, self.bucket):
            try:
                await self._run(self._client.make_bucket, self.bucket)
            except S3Error as exc:  # another replica made it first
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def ping(self) -> None:
        await self._run(self._client.bucket_exists, self.bucket)

    @contextlib.asynccontextmanager
    async def _signed(self, method: str, key: str, url: str, **kwargs: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """A request to a signed URL, its answer checked: 200 or an error class that says whose fault it is
        (BlobNotFound for a GET of no object, BlobStoreUnavailable for 5xx or no answer, BlobWriteError else)."""
        try:
            async with self._session().request(method, url, **kwargs) as response:
                if response.status == 404 and method == "GET":
                    raise BlobNotFound(key)
                if response.status != 200:
                    error = BlobStoreUnavailable if response.status >= 500 else BlobWriteError
                    raise error(f"MinIO answered {response.status} to {method} {key}: {(await response.text())[:500]}")
                yield response
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            raise BlobStoreUnavailable(f"MinIO did not answer {method} {key}: {type(exc).__name__}: {exc}") from exc

    async def put(self, key: str, data: bytes, content_type: str, *, sha256: str | None = None) -> None:
        """Store the bytes; ``sha256`` (hex) is the checksum MinIO must find, computed here when not given."""
        digest = bytes.fromhex(sha256) if sha256 else hashlib.sha256(data).digest()
        url = self._client.presigned_put_object(self.bucket, key, expires=PUT_URL_TTL)
        headers = {"Content-Type": content_type, "x-amz-checksum-sha256": base64.b64encode(digest).decode()}
        async with self._signed("PUT", key, url, data=data, headers=headers):
            pass

    async def get(self, key: str) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await self._run(read)

    async def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None:
        """Store a file of any size (the SDK sends it in parts past 64 MiB), from a worker thread."""
        await self._run(self._client.fput_object, self.bucket, key, str(path), content_type=content_type, part_size=64 * 1024**2)

    async def get_file(self, key: str, path: Path) -> None:
        """Write an object to a file (through a temporary name, so a half-written file never has ``path``)."""
        await self._run(self._client.fget_object, self.bucket, key, str(path))

    async def exists(self, key: str) -> bool:
        return await self.modified(key) is not None

    async def delete(self, key: str) -> None:
        await self._run(self._client.remove_object, self.bucket, key)

    async def delete_many(self, keys: list[str]) -> None:
        """Remove many objects (one multi-object DELETE per thousand); a key already gone is no error."""

        def remove() -> list[str]:
            errors = self._client.remove_objects(self.bucket, [DeleteObject(key) for key in keys])
            return [f"{error.name}: {error.code}" for error in errors]  # the SDK is lazy: iterating sends

        if keys and (failed := await self._run(remove)):
            raise BlobWriteError(f"MinIO refused to remove {len(failed)} object(s), e.g. {failed[0]}")

    async def modified(self, key: str) -> datetime | None:
        """When the object was last written, or None if there is none."""
        try:
            return (await self._run(self._client.stat_object, self.bucket, key)).last_modified
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return None
            raise

    async def list_pages(self, prefix: str, size: int = 1000) -> AsyncIterator[list[tuple[str, datetime]]]:
        """Every object under ``prefix`` as (key, last modified), ``size`` at a time, listed in a worker thread."""
        async for page in self.inventory_pages(prefix, size):
            yield [(obj.key, obj.modified) for obj in page]

    async def inventory_pages(self, prefix: str = "", size: int = 1000) -> AsyncIterator[list[StoredObject]]:
        """Every object under ``prefix`` with its size and ETag, ``size`` at a time, listed in a worker thread."""
        listing = self._client.list_objects(self.bucket, prefix=prefix, recursive=True)

        def next_page() -> list[StoredObject]:
            return [
                StoredObject(obj.object_name, obj.size or 0, (obj.etag or "").strip('"'), obj.last_modified)
                for obj in itertools.islice(listing, size)
            ]

        while page := await self._run(next_page):
            yield page

    async def fetch(self, key: str) -> tuple[bytes, str]:
        """An object's bytes and content type, in one GET from the event loop (no worker thread): for objects
        that fit in memory, read in bulk (a backup)."""
        url = self._client.presigned_get_object(self.bucket, key, expires=PUT_URL_TTL)
        async with self._signed("GET", key, url) as response:
            return await response.read(), response.headers.get("Content-Type") or "application/octet-stream"

    async def download(self, key: str, path: Path) -> Downloaded:
        """Stream an object into ``path`` with one GET in a worker thread, hashing it on the way."""

        def fetch() -> Downloaded:
            try:
                response = self._client.get_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    raise BlobNotFound(key) from exc
                raise
            digest, size = hashlib.sha256(), 0
            try:
                with path.open("wb") as handle:
                    for chunk in response.stream(amt=1024 * 1024):
                        digest.update(chunk)
                        handle.write(chunk)
                        size += len(chunk)
                return Downloaded(digest.hexdigest(), size, response.headers.get("Content-Type") or "application/octet-stream")
            finally:
                response.close()
                response.release_conn()

        return await self._run(fetch)

    def presigned_url(self, key: str) -> str:
        """A time-limited GET URL. Signing is local computation: no request is made."""
        return self._signer.presigned_get_object(self.bucket, key, expires=self._ttl)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
