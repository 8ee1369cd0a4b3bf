"""The bootstrap admin of a fresh install.

With ``CORPUS_ADMIN_KEY`` set, that value is the admin's key (for automation
and tests): every service makes sure of it at start, idempotently. Without it,
the annotation service (which owns users) creates an admin with a random key
the first time it starts and prints that key once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from shared.auth.guard import API_KEYS, USERS
from shared.auth.keys import display_prefix, generate_key, hash_key
from shared.auth.rules import Role

BOOTSTRAP_USER_ID = "admin"


async def ensure_admin_key(db: AsyncDatabase, key: str) -> None:
    now = datetime.now(UTC)
    await db[USERS].update_one(
        {"_id": BOOTSTRAP_USER_ID},
        {"$setOnInsert": {"name": "admin", "role": Role.ADMIN.value, "created_at": now, "disabled": False}},
        upsert=True,
    )
    await db[API_KEYS].update_one(
        {"_id": hash_key(key)},
        {
            "$setOnInsert": {
                "user_id": BOOTSTRAP_USER_ID,
                "prefix": display_prefix(key),
                "label": "bootstrap (CORPUS_ADMIN_KEY)",
                "created_at": now,
                "revoked_at": None,
            }
        },
        upsert=True,
    )


async def create_first_admin(db: AsyncDatabase) -> str | None:
    """Create the admin with a random key if no admin exists; return the key (to print once) or None."""
    if await db[USERS].find_one({"role": Role.ADMIN.value}):
        return None
    key = generate_key()
    await ensure_admin_key(db, key)
    return key
