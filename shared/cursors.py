"""Opaque page cursors: a JSON value in URL-safe base64, the way every service's list endpoints hand them out.

A cursor comes back from the caller, so decoding trusts nothing: a cursor that is too long, not base64,
not UTF-8, not JSON, or JSON nested deep enough to exhaust the parser is a :class:`BadCursor`. What the
decoded value must look like (a version, an id, a sort key) is each endpoint's own check. A cursor made for
one query can keep a :func:`fingerprint` of it, so that the same cursor sent with another query is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

# The cursors the services give out are under this: a search's holds a point-in-time id of up to 64 KiB
# (services/search/domain/cursor.py), which base64 makes about 87,500 characters.
MAX_CURSOR_CHARS = 96 * 1024


class BadCursor(ValueError):
    """The cursor is not one a service of this system gave out."""


def encode_cursor(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, max_chars: int = MAX_CURSOR_CHARS) -> Any:
    """The JSON value of a cursor :func:`encode_cursor` made (with or without its base64 padding)."""
    if len(cursor) > max_chars:
        raise BadCursor(f"a cursor of {len(cursor):,} characters")
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, RecursionError) as exc:  # ValueError covers binascii.Error and UnicodeDecodeError
        raise BadCursor(str(exc)) from None


def fingerprint(value: Any) -> str:
    """A short digest of a JSON value (object keys in any order): what a cursor keeps of the query it was made
    for, to tell it from another without carrying the query."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]
