"""Who may do what: roles, permissions, API keys. One rule set, enforced by all three services."""

from shared.auth.guard import AUTHENTICATOR, PRINCIPAL, Authenticator, Principal, require
from shared.auth.keys import generate_key, hash_key
from shared.auth.rules import Permission, Role, allowed

__all__ = [
    "AUTHENTICATOR",
    "PRINCIPAL",
    "Authenticator",
    "Permission",
    "Principal",
    "Role",
    "allowed",
    "generate_key",
    "hash_key",
    "require",
]
