"""Reading an upstream producer's S3 object (in the project's object store) with a byte cap."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import urllib3
from minio.error import S3Error

from shared.clients.blobs import UNAVAILABLE_CODES, minio_client
from shared.outages import DependencyUnavailable
from shared.settings import CorpusSettings

MISSING = ("NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound", "AccessDenied")
# Answers about the reference itself, which no retry changes (a key of "/", a name S3 does not allow).
INVALID = ("BadRequest", "InvalidArgument", "InvalidObjectName", "InvalidBucketName", "KeyTooLongError", "XMinioInvalidObjectName")


# Where the corpus keeps what it wrote itself (originals, thumbnails): no producer submits those.
OWN_PREFIXES = ("originals/", "thumbnails/")


class ObjectUnavailable(Exception):
    def __init__(self, reason: str, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient


class ObjectStoreUnavailable(ObjectUnavailable, DependencyUnavailable):
    """The project's object store does not answer, or answers that it cannot serve now: an outage of ours,
    which the consumer waits out (no attempts counted), never the submission's fault."""

    store = "MinIO"


class S3Reader:
    def __init__(self, settings: CorpusSettings, threads: int = 4) -> None:
        self._client = minio_client(settings)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3-reader")
        self._own_bucket = settings.minio_bucket

    async def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        where = f"s3://{bucket}/{key}"
        if bucket == self._own_bucket and key.startswith(OWN_PREFIXES):  # what ingest itself wrote there
            raise ObjectUnavailable(
                "invalid_message", f"{where} is one of the corpus's own objects ({key.split('/', 1)[0]}/), not a submission.", transient=False
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, partial(self._read, bucket, key, max_bytes))
        except S3Error as exc:
            if exc.code in MISSING:
                raise ObjectUnavailable("not_found", f"{where} does not exist or is not readable ({exc.code}).", transient=False) from None
            if exc.code in INVALID:
                raise ObjectUnavailable("invalid_message", f"{where} is not an object reference the store takes ({exc.code}).", transient=False) from None
            if exc.code in UNAVAILABLE_CODES:
                raise ObjectStoreUnavailable("storage_error", f"MinIO cannot serve {where} now: {exc.code}.", transient=True) from None
            raise ObjectUnavailable("storage_error", f"Reading {where} failed: {exc.code}.", transient=True) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # MinIO does not answer: an outage, not the reference's fault
            raise ObjectStoreUnavailable("storage_error", f"MinIO did not answer reading {where}: {exc}.", transient=True) from None
        except ValueError as exc:  # the client refuses the reference itself (a bucket name S3 does not allow)
            raise ObjectUnavailable("invalid_message", f"{where} is not an object reference: {exc}.", transient=False) from None

    def _read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        size = self._client.stat_object(bucket, key).size or 0
        if size > max_bytes:
            raise ObjectUnavailable("too_large", f"s3://{bucket}/{key} has {size:,} bytes, over the limit of {max_bytes:,}.", transient=False)
        response = self._client.get_object(bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
