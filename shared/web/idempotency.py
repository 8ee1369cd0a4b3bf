"""``Idempotency-Key`` for POST endpoints: the first answer to a key is stored and replayed for every repeat.

- A key is scoped to the caller (two users may pick the same key) and to the
  endpoint; entries expire after ``idempotency_ttl_seconds`` (TTL index).
- The request that claims a key holds a lease on it and renews it while it
  runs; a repeat meanwhile gets 409 with ``Retry-After``. If its process
  dies (crash, SIGKILL, a lost machine), the lease runs out and the next
  repeat takes the key over and runs the request again, instead of being
  refused until the entry expires.
- A repeat must ask for the same thing. The answer is stored with the
  request's ``Fingerprint``: method, path, ``If-Match``, and what the body
  asks for (a JSON body with sorted keys; for multipart, what its reader
  feeds in: fields, filenames, each file's SHA-256, not the boundary that
  clients redraw on retry). A repeat that differs is refused with 422
  rather than answered, silently, with what the key first stood for.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.auth import PRINCIPAL
from shared.events import utcnow
from shared.problems import PROBLEM_CONTENT_TYPE, Problem, problem_type
from shared.web.resources import MONGO, SETTINGS

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
IDEMPOTENCY = "idempotency_keys"
# Headers of an answer that are part of it, stored and replayed with its body.
KEPT_HEADERS = ("Location", "ETag", "Content-Location")


@dataclass(frozen=True)
class Stored:
    status: int | None  # None: the first request is still running
    body: Any = None
    locked_until: datetime | None = None  # while running: when its lease runs out unless renewed
    fingerprint: str | None = None  # of the request that was answered (None for entries from before fingerprints)


class IdempotencyStore:
    def __init__(self, db: AsyncDatabase, ttl_seconds: int, lease_seconds: float = 30.0) -> None:
        self.keys = db[IDEMPOTENCY]
        self.ttl = timedelta(seconds=ttl_seconds)
        self.lease = timedelta(seconds=lease_seconds)

    async def ensure_indexes(self) -> None:
        await self.keys.create_index("expires_at", expireAfterSeconds=0)

    async def claim(self, key: str) -> Stored | None:
        """Claim ``key`` for a new request; None if claimed, else what the first request left.

        A key whose request stopped renewing its lease (its process died) is taken over.
        """
        now = utcnow()
        try:
            await self.keys.insert_one(
                {"_id": key, "status": None, "created_at": now, "locked_until": now + self.lease, "expires_at": now + self.ttl}
            )
            return None
        except DuplicateKeyError:
            pass
        # Entries from before leases have no locked_until: $not/$gte matches them as run out too.
        taken = await self.keys.find_one_and_update(
            {"_id": key, "status": None, "locked_until": {"$not": {"$gte": now}}},
            {"$set": {"locked_until": now + self.lease, "expires_at": now + self.ttl}, "$inc": {"takeovers": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return None
        found = await self.keys.find_one({"_id": key})
        if found is None:  # expired between the calls: claim again
            return await self.claim(key)
        return Stored(found.get("status"), found.get("body"), found.get("locked_until"), found.get("fingerprint"))

    async def renew(self, key: str) -> None:
        await self.keys.update_one({"_id": key, "status": None}, {"$set": {"locked_until": utcnow() + self.lease}})

    @asynccontextmanager
    async def leased(self, key: str) -> AsyncIterator[None]:
        """Renew the lease on a claimed ``key`` for as long as the block runs."""

        async def keep() -> None:
            interval = self.lease.total_seconds() / 3
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.renew(key)
                except PyMongoError:  # the next renewal retries; a lapsed lease only lets a repeat run early
                    pass

        task = asyncio.create_task(keep(), name=f"idempotency-lease:{key}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def complete(self, key: str, status: int, body: Any, fingerprint: str | None = None) -> None:
        update = {"$set": {"status": status, "body": body, "fingerprint": fingerprint}, "$unset": {"locked_until": ""}}
        await self.keys.update_one({"_id": key}, update)

    async def release(self, key: str) -> None:
        """The request failed without an answer worth replaying: let a retry run it again."""
        await self.keys.delete_one({"_id": key, "status": None})


IDEMPOTENCY_STORE = web.AppKey("idempotency_store", IdempotencyStore)


class Fingerprint:
    """What a request asks for, apart from how it is framed."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def add(self, *items: str | None) -> None:
        for item in items:
            data = (item or "").encode("utf-8", "surrogateescape")  # header bytes that are not UTF-8 included
            self._sha.update(len(data).to_bytes(8, "big") + data)  # length-prefixed: ("ab", "c") differs from ("a", "bc")

    def field(self, name: str | None, value: str) -> None:
        self.add("field", name, value)

    def file(self, name: str | None, filename: str | None, sha256: str) -> None:
        self.add("file", name, filename, sha256)

    def json_body(self, raw: bytes) -> None:
        """A JSON body re-serialised with sorted keys and no spacing (bytes that are not JSON, as they are)."""
        try:
            canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        except ValueError:
            self.add("raw", hashlib.sha256(raw).hexdigest())
        else:
            self.add("json", canonical)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


FINGERPRINT = web.RequestKey("idempotency_fingerprint", Fingerprint)


def fingerprint_of(request: web.Request) -> Fingerprint | None:
    """The request's fingerprint, if one is being taken (the request carries an Idempotency-Key)."""
    return request.get(FINGERPRINT)


SCOPED_KEY = web.RequestKey("idempotency_scoped_key", str)


def request_seed(request: web.Request) -> str | None:
    """A value that is the same for every run of this request under its key, and differs for any other
    request (another caller, endpoint, key or body), or None without a key. A handler derives the ids of what
    it creates from it, so a run repeated after its lease was taken over (the first run's process died, or
    lost MongoDB between storing its work and recording its answer) finds what the first run stored instead
    of storing it again. Call it once the body has been read: the fingerprint is part of it."""
    scoped, fp = request.get(SCOPED_KEY), fingerprint_of(request)
    if scoped is None or fp is None:
        return None
    return hashlib.sha256(f"{scoped}|{fp.hexdigest()}".encode("utf-8", "surrogateescape")).hexdigest()


async def idempotency_ctx(app: web.Application) -> AsyncIterator[None]:
    """The store of Idempotency-Key answers, for a service whose POSTs take the header."""
    settings = app[SETTINGS]
    store = IdempotencyStore(app[MONGO], settings.idempotency_ttl_seconds, settings.idempotency_lease_seconds)
    await store.ensure_indexes()
    app[IDEMPOTENCY_STORE] = store
    yield


def retry_after(locked_until: datetime | None) -> int:
    """Whole seconds until a running request's lease is renewed or runs out (at least 1)."""
    if locked_until is None:
        return 1
    return max(1, math.ceil((locked_until - utcnow()).total_seconds()))


Answer = tuple[int, Any, dict[str, str]]
Produce = Callable[[], Awaitable[Answer]]
Reread = Callable[[], Awaitable[object]]


async def _reread(reread: Reread) -> None:
    """Parse a repeat's body for its fingerprint; a refusal while parsing is part of what it asked for
    (the first request met the same one at the same place)."""
    try:
        await reread()
    except Problem:
        pass


async def respond(request: web.Request, scope: str, produce: Produce, reread: Reread | None = None) -> web.Response:
    """Answer with ``produce()``; under a key, store that answer and replay it for repeats.

    ``reread()`` parses the body the way ``produce`` does and nothing more, feeding the
    fingerprint, so a repeat can be compared with the first request. Without it the body
    is taken as JSON and fingerprinted before ``produce`` runs (aiohttp keeps the bytes).
    """
    key = request.headers.get(HEADER, "").strip()
    if not key:
        status, body, headers = await produce()
        return web.json_response(body, status=status, headers=headers)
    if len(key) > 255:
        raise Problem(400, "Bad Request", f"The {HEADER} header is longer than 255 characters.")
    if not _is_utf8(key):
        raise Problem(400, "Bad Request", f"The {HEADER} header is not valid UTF-8 text.")
    store = request.app[IDEMPOTENCY_STORE]
    scoped = f"{request[PRINCIPAL].user_id}|{scope}|{key}"
    request[SCOPED_KEY] = scoped
    request[FINGERPRINT] = fp = Fingerprint()
    fp.add(request.method, request.rel_url.path_qs, request.headers.get("If-Match"))
    if reread is None:
        fp.json_body(await request.read())
    previous = await store.claim(scoped)
    if previous is not None:
        return await _repeat(key, previous, fp, reread)
    try:
        async with store.leased(scoped):
            status, body, headers = await produce()
    except Problem as problem:
        if problem.status >= 500:
            await store.release(scoped)
            raise
        await store.complete(scoped, problem.status, {"body": problem.to_dict(), "headers": problem.headers}, fp.hexdigest())
        raise
    except BaseException:
        await store.release(scoped)
        raise
    await store.complete(scoped, status, {"body": body, "headers": headers}, fp.hexdigest())
    return web.json_response(body, status=status, headers=headers)


def _is_utf8(text: str) -> bool:
    """False for header bytes that are not UTF-8 (aiohttp keeps them as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _repeat(key: str, previous: Stored, fp: Fingerprint, reread: Reread | None) -> web.Response:
    if previous.status is None:
        raise Problem(
            409,
            "Conflict",
            f"A request with {HEADER} {key!r} is still being processed; retry when it has finished.",
            type_=problem_type("idempotency-in-progress"),
            headers={"Retry-After": str(retry_after(previous.locked_until))},
        )
    if previous.fingerprint is not None:
        if reread is not None:
            await _reread(reread)
        if fp.hexdigest() != previous.fingerprint:
            raise Problem(
                422,
                "Unprocessable Content",
                f"The {HEADER} {key!r} was first used for a different request (another path, body or If-Match); "
                "send a new key with a new request.",
                type_=problem_type("idempotency-key-reused"),
            )
    content_type = PROBLEM_CONTENT_TYPE if previous.status >= 400 else "application/json"
    return web.json_response(
        previous.body["body"],
        status=previous.status,
        headers={**previous.body["headers"], REPLAYED: "true"},
        content_type=content_type,
    )


def idempotent(scope: str) -> Callable:
    """Run a handler that answers JSON under the request's Idempotency-Key, if it carries one."""

    def wrap(handler: Callable[[web.Request], Awaitable[web.Response]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.Response:
            async def produce() -> Answer:
                response = await handler(request)
                kept = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
                return response.status, json.loads(response.body) if response.body else None, kept

            return await respond(request, scope, produce)

        return run

    return wrap
