"""File names as senders give them, made safe to store and to write into an export's folders."""

from __future__ import annotations

import re
import unicodedata

MAX_FILENAME = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_filename(raw: str | None) -> str | None:
    """The last path segment of ``raw``, valid UTF-8, without control characters, at most 255 characters.

    A multipart ``filename`` is whatever the client sent: ``../../etc/x.jpg`` (an export would write it
    outside its folder), bytes that are not UTF-8 (aiohttp keeps them as lone surrogates, which MongoDB
    cannot store), line breaks. Only the name is kept, as browsers send it; None when nothing is left.
    """
    if raw is None:
        return None
    text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text))
    name = re.split(r"[/\\]", text)[-1].strip()
    if name in ("", ".", ".."):
        return None
    return name[:MAX_FILENAME]
