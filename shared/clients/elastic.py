"""Elasticsearch, async client; its major version matches the server's (8.x)."""

from __future__ import annotations

from elastic_transport import OrjsonSerializer
from elasticsearch import AsyncElasticsearch

from shared.settings import CorpusSettings


def elastic_client(settings: CorpusSettings) -> AsyncElasticsearch:
    """Requests and responses are (de)serialised with orjson: on a 20-hit page that is most of the client's own time."""
    return AsyncElasticsearch(
        settings.es_url, request_timeout=30, retry_on_timeout=True, max_retries=3, serializer=OrjsonSerializer()
    )
