"""Elasticsearch, async client; its major version matches the server's (8.x)."""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch

from shared.settings import CorpusSettings


def elastic_client(settings: CorpusSettings) -> AsyncElasticsearch:
    return AsyncElasticsearch(settings.es_url, request_timeout=30, retry_on_timeout=True, max_retries=3)
