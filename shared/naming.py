"""The one normalisation rule for names people type: tags and label names.

Unicode NFKC, control characters dropped, case-folded, trimmed, and every
run of whitespace, ``_`` or ``-`` collapsed to one space. ``"  Traffic_Light "``, ``"traffic-light"`` and
``"TRAFFIC  LIGHT"`` all become ``"traffic light"``. Services apply it on every
way in, and search applies it to filter values, so both sides agree.

File names have a rule of their own (:func:`safe_file_name`): ingest stores by it and exports name archive
members by it.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable

_SEPARATORS = re.compile(r"[\s_\-]+")
# Control characters other than whitespace (which separates): nothing a person types into a name.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def normalize_name(raw: str) -> str:
    text = _CONTROL.sub("", unicodedata.normalize("NFKC", raw)).casefold()
    return _SEPARATORS.sub(" ", text).strip()


def normalize_names(raw: Iterable[str]) -> list[str]:
    """Normalise, drop empties and duplicates, keep first-seen order."""
    seen: dict[str, None] = {}
    for item in raw:
        name = normalize_name(item)
        if name:
            seen.setdefault(name, None)
    return list(seen)


def split_csv(raw: str | None) -> list[str]:
    """Comma-separated values, trimmed, empties dropped; a value holding a comma is written in double quotes,
    as in CSV: ``'"cat, tabby", dog'`` → ``["cat, tabby", "dog"]``. Label names may hold commas."""
    if not raw:
        return []
    try:
        values = next(csv.reader([raw], skipinitialspace=True))
    except csv.Error:  # a line break or a stray quote CSV refuses: the plain split
        values = raw.split(",")
    return [value.strip() for value in values if value.strip()]


def split_csv_names(raw: str | None) -> list[str]:
    """``"cat, Dog,,cat"`` → ``["cat", "dog"]``; ``'"cat, tabby",dog'`` → ``["cat, tabby", "dog"]``."""
    return normalize_names(split_csv(raw))


MAX_FILE_NAME = 255
# Control characters (C0, DEL, C1): none belongs in a file name, whitespace ones included.
_FILE_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_file_name(raw: str | None) -> str | None:
    """The last path segment of ``raw``, valid UTF-8, without control characters, at most 255 characters;
    None when nothing but dots (or nothing) is left.

    A multipart ``filename`` is whatever the client sent, and documents stored before names were cleaned
    may hold one: ``../../etc/x.jpg`` (an export would write it outside its folder), bytes that are not
    UTF-8 (aiohttp keeps them as lone surrogates, which MongoDB cannot store), line breaks. Ingest stores
    the result; exports name archive members by it.
    """
    if raw is None:
        return None
    text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = _FILE_NAME_CONTROL.sub("", unicodedata.normalize("NFC", text))
    name = re.split(r"[/\\]", text)[-1].strip()
    return name[:MAX_FILE_NAME] if name.strip(".") else None
