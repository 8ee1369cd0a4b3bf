"""From MongoDB state (an image document and its annotation summary) to a search document.

One projection serves events, ``reindex`` and ``reconcile``, so the index is
always a function of what MongoDB holds. The external version combines both
sources' versions, so it grows whenever either does: ``(image << 32) | summary``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from shared.naming import normalize_name, normalize_names

_WORD_SEPARATORS = re.compile(r"[\s_\-.]+")
_SUMMARY_BITS = 32
# Optional image fields copied as they are (the ingest pipeline fills them when it knows them).
_PLAIN_FIELDS = ("source", "source_kind", "dataset", "licence", "author", "uploader", "camera_make", "camera_model", "lens")
# Where ingest keeps them: top level, ``exif`` (camera) or ``origin`` (provenance; ``kind`` is the source kind).
_ORIGIN_NAMES = {"source_kind": "kind", "dataset": "dataset", "licence": "licence", "author": "author"}
_TEXT_FIELDS = ("caption", "title", "source_title", "description")
# 4 bytes per character at most in UTF-8: 8,000 characters stay under Lucene's 32,766-byte term limit.
KEYWORD_MAX_CHARS = 8_000


def external_version(image_version: int, summary_version: int) -> int:
    if not 0 <= summary_version < 1 << _SUMMARY_BITS or not 0 <= image_version < 1 << 30:
        raise ValueError(f"versions out of range: image {image_version}, summary {summary_version}")
    return (image_version << _SUMMARY_BITS) | summary_version


def split_version(version: int) -> tuple[int, int]:
    return version >> _SUMMARY_BITS, version & ((1 << _SUMMARY_BITS) - 1)


def filename_words(filename: str | None) -> str:
    if not filename:
        return ""
    stem = PurePosixPath(filename.replace("\\", "/")).name
    return _WORD_SEPARATORS.sub(" ", stem).strip()


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value if isinstance(value, str) else None


def _captions(image: dict[str, Any]) -> list[str]:
    metadata = image.get("metadata") if isinstance(image.get("metadata"), dict) else {}
    found = [place[f] for place in (image, metadata) for f in _TEXT_FIELDS if isinstance(place.get(f), str)]
    captions = image.get("captions")
    if isinstance(captions, list):
        found += [c for c in captions if isinstance(c, str)]
    return found


def project(image: dict[str, Any], summary: dict[str, Any] | None) -> tuple[dict[str, Any], int]:
    """The search document of an image and the external version to write it at."""
    summary = summary or {}
    exif = image.get("exif") if isinstance(image.get("exif"), dict) else {}
    origin = image.get("origin") if isinstance(image.get("origin"), dict) else {}
    width, height = int(image["width"]), int(image["height"])
    label_counts = {normalize_name(k): int(v) for k, v in (summary.get("labels") or {}).items() if normalize_name(k)}
    type_counts = {str(k): int(v) for k, v in (summary.get("types") or {}).items()}
    tags = normalize_names(image.get("tags") or [])
    doc: dict[str, Any] = {
        "image_id": image["_id"],
        "version": int(image.get("version", 1)),
        "summary_version": int(summary.get("version", 0)),
        "sha256": image.get("sha256", image["_id"]),
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 4),
        "aspect_ratio": round(width / height, 4) if height else None,
        "format": str(image.get("format", "")).lower() or None,
        "bytes": image.get("bytes"),
        "tags": tags,
        "filename": image.get("filename"),
        "captured_at": _iso(image.get("captured_at") or exif.get("captured_at")),
        "created_at": _iso(image.get("created_at")),
        "indexed_at": datetime.now(UTC).isoformat(),
        "phash": image.get("phash"),
        "dhash": image.get("dhash"),
        "thumbnail": bool(image.get("thumbnail")),
        "near_duplicate_of": image.get("near_duplicate_of"),
        "is_near_duplicate": bool(image.get("near_duplicate_of")),
        "labels": sorted(label_counts),
        "label_counts": label_counts,
        "annotation_types": sorted(t for t, n in type_counts.items() if n > 0),
        "type_counts": type_counts,
        "annotation_count": int(summary.get("count", sum(label_counts.values()))),
    }
    for field in _PLAIN_FIELDS:
        value = image.get(field) or exif.get(field) or origin.get(_ORIGIN_NAMES.get(field, ""))
        doc[field] = value if isinstance(value, str) and value else None
    text = [*tags, *label_counts, *_captions(image), filename_words(image.get("filename")), doc["source"], doc["dataset"]]
    for field, value in doc.items():
        if isinstance(value, str):
            doc[field] = clipped(value)
        elif isinstance(value, list):
            doc[field] = [clipped(v) if isinstance(v, str) else v for v in value]
    doc["text"] = " ".join(part for part in text if part)
    return doc, external_version(doc["version"], doc["summary_version"])


def clipped(value: str) -> str:
    """At most ``KEYWORD_MAX_CHARS``: Elasticsearch refuses a whole document with one keyword term over
    32,766 bytes, and a tag or source that long (MongoDB took it) must not keep its image out of search."""
    return value[:KEYWORD_MAX_CHARS]
