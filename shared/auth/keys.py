"""API keys: random, shown once, stored only as a hash.

Keys carry 256 bits from ``secrets``, so a plain SHA-256 is the right hash
(no salt or slow hash is needed for a secret that cannot be guessed); the
prefix is kept to let a person tell keys apart.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ick_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 6]
