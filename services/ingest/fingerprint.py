"""What a request asks for, apart from how it is framed: the basis for refusing a reused Idempotency-Key.

A repeat under the same key must be the same request. Comparing raw bodies
would refuse every honest retry of a multipart upload (clients draw a new
boundary each time), so the readers feed a ``Fingerprint`` with what they
parse: each form field's name and value and each file's field, filename and
SHA-256, in order, or a JSON body re-serialised with sorted keys. Only
requests that carry a key get one (``start``); the others pay nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

class Fingerprint:
    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def add(self, *items: str | None) -> None:
        for item in items:
            data = (item or "").encode()
            self._sha.update(len(data).to_bytes(8, "big") + data)  # length-prefixed: ("ab", "c") differs from ("a", "bc")

    def field(self, name: str | None, value: str) -> None:
        self.add("field", name, value)

    def file(self, name: str | None, filename: str | None, sha256: str) -> None:
        self.add("file", name, filename, sha256)

    def json(self, value: Any) -> None:
        self.add("json", json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


KEY = web.RequestKey("ingest_fingerprint", Fingerprint)


def start(request: web.Request) -> Fingerprint:
    request[KEY] = found = Fingerprint()
    return found


def of(request: web.Request) -> Fingerprint | None:
    """The request's fingerprint, if it is being taken (the request carries an Idempotency-Key)."""
    return request.get(KEY)
