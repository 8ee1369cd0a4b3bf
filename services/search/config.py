"""Search settings (environment, prefix ``CORPUS_``)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CorpusSettings


class SearchSettings(CorpusSettings):
    service_name: str = "search"
    port: int = 8003
    # Single-node stack: no replicas (they could never be allocated).
    es_replicas: int = Field(default=0, ge=0)
    es_shards: int = Field(default=1, ge=1)
    page_size_default: int = Field(default=20, ge=1)
    page_size_max: int = Field(default=100, ge=1)
