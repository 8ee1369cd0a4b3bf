"""Users and their API keys (collections ``users`` and ``api_keys``, shapes fixed in shared/auth).

A key is generated here, returned once, and stored only as its SHA-256.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.annotation.domain.errors import NotFound
from shared.auth.guard import API_KEYS, USERS
from shared.auth.keys import display_prefix, generate_key, hash_key
from shared.auth.rules import Role
from shared.events import utcnow


class UserRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.users = db[USERS]
        self.keys = db[API_KEYS]

    async def create(self, name: str, role: Role) -> dict[str, Any]:
        doc = {"_id": uuid.uuid4().hex, "name": name, "role": role.value, "created_at": utcnow(), "disabled": False}
        await self.users.insert_one(doc)
        return doc

    async def get(self, user_id: str) -> dict[str, Any]:
        doc = await self.users.find_one({"_id": user_id})
        if doc is None:
            raise NotFound(f"No user has id {user_id!r}.")
        return doc

    async def page(self, after_id: str, limit: int) -> list[dict[str, Any]]:
        return await self.users.find({"_id": {"$gt": after_id}}).sort("_id", ASCENDING).limit(limit).to_list()

    async def update(self, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        await self.get(user_id)
        if changes:
            await self.users.update_one({"_id": user_id}, {"$set": changes})
        return await self.get(user_id)

    async def issue_key(self, user_id: str, label: str, expires_at: datetime | None) -> tuple[str, dict[str, Any]]:
        """A new key for the user: (the key itself, shown once; its stored record)."""
        await self.get(user_id)
        key = generate_key()
        record = {
            "_id": hash_key(key), "user_id": user_id, "prefix": display_prefix(key), "label": label,
            "created_at": utcnow(), "revoked_at": None, "expires_at": expires_at,
        }  # fmt: skip
        await self.keys.insert_one(record)
        return key, record

    async def keys_of(self, user_id: str) -> list[dict[str, Any]]:
        await self.get(user_id)
        return await self.keys.find({"user_id": user_id}).sort("created_at", ASCENDING).to_list()

    async def revoke(self, user_id: str, key_id: str) -> dict[str, Any]:
        record = await self.keys.find_one_and_update(
            {"_id": key_id, "user_id": user_id, "revoked_at": None}, {"$set": {"revoked_at": utcnow()}}
        )
        if record is None:
            existing = await self.keys.find_one({"_id": key_id, "user_id": user_id})
            if existing is None:
                raise NotFound(f"User {user_id!r} has no key {key_id!r}.")
            return existing  # revoking twice is harmless
        return await self.keys.find_one({"_id": key_id})
