"""Authenticating requests by API key and enforcing permissions per endpoint.

Keys and users live in MongoDB (``api_keys``, ``users``; the annotation
service manages them). Every service looks keys up there read-only, with a
short cache, so a revoked key stops working within ``CACHE_SECONDS``. The
cache holds at most ``CACHE_ENTRIES`` keys, so a client sending random keys
cannot grow it without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from cachetools import TTLCache
from pymongo.asynchronous.database import AsyncDatabase

from shared.auth.keys import hash_key
from shared.auth.rules import Permission, Role, allowed
from shared.problems import Problem, problem_type

USERS = "users"
API_KEYS = "api_keys"
CACHE_SECONDS = 5.0
CACHE_ENTRIES = 10_000
MAX_KEY_CHARS = 256  # keys this system makes have 47


@dataclass(frozen=True)
class Principal:
    user_id: str
    name: str
    role: Role

    @property
    def is_anonymous(self) -> bool:
        return self.user_id == "anonymous"


ANONYMOUS = Principal("anonymous", "anonymous", Role.READER)


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("X-API-Key") or None


class Authenticator:
    def __init__(self, db: AsyncDatabase, *, anonymous_read: bool, cache_entries: int = CACHE_ENTRIES) -> None:
        self.db = db
        self.anonymous_read = anonymous_read
        self._cache: TTLCache[str, Principal | None] = TTLCache(maxsize=cache_entries, ttl=CACHE_SECONDS)

    async def principal_for(self, key: str) -> Principal | None:
        if len(key) > MAX_KEY_CHARS or not key.isprintable():
            return None  # no key this system made (header bytes that are not UTF-8 arrive as lone surrogates)
        digest = hash_key(key)
        if digest in self._cache:
            return self._cache[digest]
        principal = await self._lookup(digest)
        self._cache[digest] = principal
        return principal

    async def _lookup(self, digest: str) -> Principal | None:
        record = await self.db[API_KEYS].find_one({"_id": digest, "revoked_at": None})
        if record is None:
            return None
        if (expires := record.get("expires_at")) and expires <= datetime.now(UTC):
            return None
        user = await self.db[USERS].find_one({"_id": record["user_id"], "disabled": {"$ne": True}})
        if user is None:
            return None
        return Principal(str(user["_id"]), user["name"], Role(user["role"]))

    async def authorise(self, request: web.Request, permission: Permission) -> Principal:
        key = presented_key(request)
        if key is None:
            if self.anonymous_read and permission is Permission.READ:
                return ANONYMOUS
            raise Problem(
                401,
                "Unauthorized",
                "Send an API key as 'Authorization: Bearer <key>' (or 'X-API-Key').",
                type_=problem_type("unauthenticated"),
                headers={"WWW-Authenticate": 'Bearer realm="image-corpus"'},
            )
        principal = await self.principal_for(key)
        if principal is None:
            raise Problem(
                401,
                "Unauthorized",
                "The API key is unknown, revoked or expired.",
                type_=problem_type("bad-key"),
                headers={"WWW-Authenticate": 'Bearer realm="image-corpus", error="invalid_token"'},
            )
        if not allowed(principal.role, permission):
            raise Problem(
                403,
                "Forbidden",
                f"The role {principal.role.value!r} may not {permission.value.replace('_', ' ')}.",
                type_=problem_type("forbidden"),
                role=principal.role.value,
                needs=permission.value,
            )
        return principal


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
PRINCIPAL = web.RequestKey("principal", Principal)  # who is calling, set by require()


def require(permission: Permission, handler):
    """Wrap a view so it runs only for a principal holding ``permission``."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        request[PRINCIPAL] = await request.app[AUTHENTICATOR].authorise(request, permission)
        return await handler(request)

    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return guarded
