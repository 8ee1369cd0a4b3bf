"""Rules for the free-form values people send besides geometry: attributes, label names, external ids.

Each value ends up in a MongoDB document, a search index and export files. What
BSON cannot hold (an integer beyond 64 bits, a key with a NUL byte, nesting past
MongoDB's 100-180 levels), what breaks an index (a 40,000-character label) or an
XML file (control characters), and a key that MongoDB would read as a path
(``a.b``) or an operator (``$x``) is refused here with a stable ``reason``, so it
never reaches the database as a 500 halfway through a write.
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any

from services.annotation.domain.errors import InvalidAnnotation

MAX_NAME_CHARS = 200  # a label name or alias, after normalisation
MAX_DESCRIPTION_CHARS = 10_000  # a label's description: a paragraph, not a document
MAX_ATTRIBUTES_DEPTH = 20  # levels of objects and lists inside ``attributes``
MAX_ATTRIBUTES_BYTES = 64 * 1024  # ``attributes`` as compact JSON
MAX_EXTERNAL_IDS = 100  # schemes per label
MAX_SCHEME_CHARS = 100
MAX_EXTERNAL_ID_CHARS = 200
INT64 = (-(2**63), 2**63 - 1)
# Cc: control characters (XML 1.0 refuses most); Cs: lone surrogates (no UTF-8 for BSON).
_REFUSED_CATEGORIES = ("Cc", "Cs")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in text)


def check_label_name(raw: Any, name: str) -> str:
    """``name`` is ``raw`` normalised; it must be non-empty, at most 200 characters, no control characters."""
    if not name:
        raise InvalidAnnotation("label_name", f"The label name {raw!r} is empty once normalised.")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidAnnotation(
            "label_name_too_long", f"A label name or alias has at most {MAX_NAME_CHARS} characters; this one has {len(name)}."
        )
    if _has_control(name):
        raise InvalidAnnotation(
            "label_name_characters", f"The label name {name!r} holds control characters; names are printable text."
        )
    return name


def check_external_ids(ids: Any) -> dict[str, str]:
    """Scheme → id. Schemes become MongoDB field names: non-empty, no '.', no leading '$', no control characters."""
    if not isinstance(ids, dict):
        raise InvalidAnnotation("external_ids", "'external_ids' must be an object: scheme → id.")
    if len(ids) > MAX_EXTERNAL_IDS:
        raise InvalidAnnotation("external_ids", f"A label has at most {MAX_EXTERNAL_IDS} external ids.")
    for scheme, value in ids.items():
        if not valid_scheme(scheme):
            raise InvalidAnnotation(
                "external_ids",
                f"External id scheme {scheme!r} is not usable: 1 to {MAX_SCHEME_CHARS} characters, "
                "no '.', not starting with '$', no control characters.",
            )
        if not isinstance(value, str) or len(value) > MAX_EXTERNAL_ID_CHARS or _has_control(value):
            raise InvalidAnnotation(
                "external_ids", f"External id of {scheme!r} must be text of at most {MAX_EXTERNAL_ID_CHARS} characters."
            )
    return dict(ids)


def scheme_for(dataset: str) -> str | None:
    """The external-id scheme a dataset's category ids are kept under: its name, with '.' written as '_' and
    a leading '$' dropped (``coco.2017`` → ``coco_2017``), since both would be read as a path or an operator
    in MongoDB; None when no usable scheme is left. Exports map a requested scheme the same way, so
    ``id_scheme=coco.2017`` finds them."""
    scheme = dataset.replace(".", "_").lstrip("$")[:MAX_SCHEME_CHARS]
    return scheme if valid_scheme(scheme) else None


def valid_scheme(scheme: Any) -> bool:
    return (
        isinstance(scheme, str) and 0 < len(scheme) <= MAX_SCHEME_CHARS
        and "." not in scheme and not scheme.startswith("$") and not _has_control(scheme)
    )  # fmt: skip


def check_attributes(attributes: Any) -> dict[str, Any]:
    """Free JSON, as long as it is an object that BSON holds and stays small and shallow."""
    if not isinstance(attributes, dict):
        raise InvalidAnnotation("attributes_shape", "'attributes' must be an object (send {} for none), not null.")
    _walk(attributes, 1)
    size = len(json.dumps(attributes, separators=(",", ":")).encode())
    if size > MAX_ATTRIBUTES_BYTES:
        raise InvalidAnnotation(
            "attributes_too_large", f"'attributes' is {size} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES} are kept."
        )
    return attributes


def _walk(value: Any, depth: int) -> None:
    """Depth first, iterating no deeper than the limit (so a hostile body never hits Python's recursion limit)."""
    if isinstance(value, dict | list) and depth > MAX_ATTRIBUTES_DEPTH:
        raise InvalidAnnotation(
            "attributes_too_deep", f"'attributes' nests objects and lists at most {MAX_ATTRIBUTES_DEPTH} levels deep."
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or _has_control(key):
                raise InvalidAnnotation("attributes_shape", f"Attribute key {key!r} holds control characters.")
            _walk(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _walk(item, depth + 1)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        raise InvalidAnnotation("attributes_shape", "Integers in 'attributes' must fit in 64 bits.")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidAnnotation("attributes_shape", "Numbers in 'attributes' must be finite.")
    elif isinstance(value, str) and any(unicodedata.category(c) == "Cs" for c in value):
        raise InvalidAnnotation("attributes_shape", "Text in 'attributes' must be valid Unicode (no lone surrogates).")
