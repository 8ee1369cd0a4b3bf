"""The search mirror against a real Elasticsearch: external versions keep it from going back in time."""

import uuid

import pytest

from services.search.adapters.index import MAPPING, ImageIndex


@pytest.fixture
async def index(es, base_settings):
    idx = ImageIndex(es, f"{base_settings.es_index_prefix}-{uuid.uuid4().hex[:6]}")
    await idx.ensure()
    await idx.ensure()  # idempotent
    return idx


def doc(version: int, tags: list[str]) -> dict:
    return {"image_id": "a" * 64, "version": version, "tags": tags, "width": 10, "height": 10, "text": " ".join(tags)}


async def test_alias_points_at_the_versioned_index_with_the_explicit_mapping(index, es):
    aliases = await es.indices.get_alias(name=index.alias)
    assert list(aliases.body) == [index.index]
    mapping = await es.indices.get_mapping(index=index.alias)
    assert mapping.body[index.index]["mappings"]["dynamic"] == "strict"
    assert set(mapping.body[index.index]["mappings"]["properties"]) == set(MAPPING["properties"])


async def test_an_old_or_repeated_event_never_overwrites_newer_state(index, es):
    assert await index.upsert("a" * 64, doc(2, ["new"]), 2) is True
    assert await index.upsert("a" * 64, doc(1, ["old"]), 1) is False
    assert await index.upsert("a" * 64, doc(2, ["new"]), 2) is False
    stored = await es.get(index=index.alias, id="a" * 64)
    assert stored["_version"] == 2
    assert stored["_source"]["tags"] == ["new"]
    assert await index.upsert("a" * 64, doc(3, ["newest"]), 3) is True


async def test_strict_mapping_refuses_unknown_fields(index):
    from elasticsearch import BadRequestError

    with pytest.raises(BadRequestError):
        await index.upsert("b" * 64, {"image_id": "b" * 64, "colour": "red"}, 1)


async def test_a_projected_document_with_huge_keyword_values_is_indexed(index, es):
    from services.search.domain.documents import KEYWORD_MAX_CHARS, project

    huge = "ü" * 40_000  # 80,000 bytes in UTF-8: Lucene refuses a keyword term over 32,766
    image = {"_id": "c" * 64, "version": 1, "width": 10, "height": 10, "format": "PNG", "tags": [huge, "ok"], "author": huge}
    document, version = project(image, {"version": 1, "labels": {huge: 1}})
    assert await index.upsert("c" * 64, document, version) is True
    stored = (await es.get(index=index.alias, id="c" * 64))["_source"]
    assert stored["tags"] == ["ü" * KEYWORD_MAX_CHARS, "ok"] and stored["labels"] == ["ü" * KEYWORD_MAX_CHARS]
    assert stored["author"] == "ü" * KEYWORD_MAX_CHARS
