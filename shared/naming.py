"""The one normalisation rule for names people type: tags and label names.

Unicode NFKC, control characters dropped, case-folded, trimmed, and every
run of whitespace, ``_`` or ``-`` collapsed to one space. ``"  Traffic_Light "``, ``"traffic-light"`` and
``"TRAFFIC  LIGHT"`` all become ``"traffic light"``. Services apply it on every
way in, and search applies it to filter values, so both sides agree.
"""

from __future__ import annotations

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


def split_csv_names(raw: str | None) -> list[str]:
    """``"cat, Dog,,cat"`` → ``["cat", "dog"]``."""
    return normalize_names((raw or "").split(","))
