"""The explicit, versioned mapping of the images index.

Bump ``MAPPING_VERSION`` on any change: ``reindex`` builds an index of the new
version from MongoDB and moves the alias to it atomically.

Keywords are normalised in the service (``shared.naming``), because the
minimal Elasticsearch distribution has no ``lowercase`` normaliser.
"""

from __future__ import annotations

from typing import Any

MAPPING_VERSION = 2

_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}
# Faceted keywords: global ordinals built at refresh, not on the first aggregation after it.
_FACETED = {"type": "keyword", "eager_global_ordinals": True}

MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "image_id": _KEYWORD,
        "version": {"type": "long"},  # the image document's version
        "summary_version": {"type": "long"},  # the annotation summary's version (0: none)
        "sha256": _KEYWORD,
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "megapixels": {"type": "float"},
        "aspect_ratio": {"type": "float"},
        "format": _FACETED,
        "bytes": {"type": "long"},
        "tags": _FACETED,
        "source": _FACETED,
        "source_kind": _KEYWORD,
        "dataset": _KEYWORD,
        "licence": _KEYWORD,
        "author": _KEYWORD,
        "uploader": _KEYWORD,
        "filename": {"type": "keyword", "ignore_above": 1024},
        "camera_make": _KEYWORD,
        "camera_model": _KEYWORD,
        "lens": _KEYWORD,
        "captured_at": _DATE,
        "created_at": _DATE,
        "indexed_at": _DATE,
        "phash": _KEYWORD,
        "dhash": _KEYWORD,
        "thumbnail": {"type": "boolean"},
        "near_duplicate_of": _KEYWORD,
        "is_near_duplicate": {"type": "boolean"},
        # Labels from the annotation summary: names (normalised) for filters and facets,
        # counts kept in the source only (not indexed: their keys are open-ended).
        "labels": _FACETED,
        "label_counts": {"type": "object", "enabled": False},
        "annotation_types": _KEYWORD,
        "type_counts": {"type": "object", "enabled": False},
        "annotation_count": {"type": "integer"},
        # Free text: tags, labels, captions, file-name words, source and dataset titles.
        "text": {"type": "text", "analyzer": "standard"},
    },
}


def index_settings(shards: int, replicas: int) -> dict[str, Any]:
    return {"number_of_shards": shards, "number_of_replicas": replicas}
