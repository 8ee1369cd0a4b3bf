"""The images index: an explicit, versioned mapping behind an alias.

Writes use external versioning with the image document's version, so a
replayed or late event never overwrites a newer state: Elasticsearch answers
409 and that counts as done.
"""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError

MAPPING_VERSION = 1

MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "image_id": {"type": "keyword"},
        "version": {"type": "long"},
        "sha256": {"type": "keyword"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "megapixels": {"type": "float"},
        "aspect_ratio": {"type": "float"},
        "format": {"type": "keyword"},
        "bytes": {"type": "long"},
        "tags": {"type": "keyword"},
        "source": {"type": "keyword"},
        "filename": {"type": "keyword", "ignore_above": 1024},
        "phash": {"type": "keyword"},
        "dhash": {"type": "keyword"},
        "created_at": {"type": "date"},
        "indexed_at": {"type": "date"},
        # Free text: tags, file-name words, source; the standard analyzer is in every distribution.
        "text": {"type": "text", "analyzer": "standard"},
    },
}


class ImageIndex:
    def __init__(self, es: AsyncElasticsearch, prefix: str, *, shards: int = 1, replicas: int = 0) -> None:
        self.es = es
        self.alias = f"{prefix}-images"
        self.index = f"{self.alias}-v{MAPPING_VERSION}"
        self.settings = {"number_of_shards": shards, "number_of_replicas": replicas}

    async def ensure(self) -> None:
        """Create the current index and point the alias at it, unless the alias exists."""
        if await self.es.indices.exists_alias(name=self.alias):
            return
        if not await self.es.indices.exists(index=self.index):
            await self.es.options(ignore_status=400).indices.create(
                index=self.index, mappings=MAPPING, settings=self.settings
            )
        await self.es.indices.put_alias(index=self.index, name=self.alias)

    async def upsert(self, doc_id: str, document: dict[str, Any], version: int) -> bool:
        """Index a document at a version. False when the index already holds that version or newer."""
        try:
            await self.es.index(
                index=self.alias, id=doc_id, document=document, version=version, version_type="external"
            )
        except ConflictError:
            return False
        return True

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.es.search(index=self.alias, **body)
        return response.body
