from datetime import UTC, datetime

import pytest

from services.search.domain.documents import external_version, project, split_version


def image(**extra):
    return {
        "_id": "ab" * 32, "version": 3, "sha256": "ab" * 32, "width": 640, "height": 480, "format": "JPEG",
        "bytes": 1000, "tags": ["Tabby_Cat", "indoor"], "source": "flickr", "filename": "photos/My_Cat-2024.jpg",
        "phash": "f" * 16, "dhash": "0" * 16, "created_at": datetime(2026, 1, 1, tzinfo=UTC), **extra,
    }


def test_search_document_derives_shape_fields_and_free_text():
    doc, version = project(image(), None)
    assert doc["megapixels"] == 0.3072
    assert doc["aspect_ratio"] == 1.3333
    assert doc["format"] == "jpeg"
    assert doc["tags"] == ["tabby cat", "indoor"]
    assert doc["version"] == 3 and doc["summary_version"] == 0
    assert version == 3 << 32
    assert doc["labels"] == [] and doc["annotation_count"] == 0
    assert doc["text"] == "tabby cat indoor My Cat 2024 jpg flickr"


def test_labels_come_from_the_annotation_summary_and_raise_the_version():
    summary = {"_id": "ab" * 32, "version": 5, "count": 4, "labels": {"Person": 3, "dog": 1}, "types": {"bbox": 3, "polygon": 1, "mask": 0}}
    doc, version = project(image(caption="a man walking his dog", captured_at=datetime(2020, 5, 1, tzinfo=UTC)), summary)
    assert doc["labels"] == ["dog", "person"]
    assert doc["label_counts"] == {"person": 3, "dog": 1}
    assert doc["annotation_types"] == ["bbox", "polygon"]
    assert doc["annotation_count"] == 4
    assert doc["captured_at"] == "2020-05-01T00:00:00+00:00"
    assert "person" in doc["text"] and "walking" in doc["text"]
    assert version == external_version(3, 5) and split_version(version) == (3, 5)
    assert version > external_version(3, 4) and version < external_version(4, 0)


def test_versions_out_of_range_are_refused():
    with pytest.raises(ValueError):
        external_version(1, 1 << 32)


def test_provenance_and_camera_come_from_where_ingest_keeps_them():
    doc, _ = project(
        image(
            source=None,
            origin={"kind": "dataset", "dataset": "coco128", "licence": "CC BY 2.0", "author": "ann", "uri": "x"},
            exif={"camera_make": "Canon", "camera_model": "EOS 5D", "captured_at": datetime(2019, 7, 4, tzinfo=UTC), "gps": {"lat": 1.0, "lon": 2.0}},
            metadata={"caption": "a cat on a mat"},
            near_duplicate_of="cd" * 32,
            thumbnail=True,
        ),
        None,
    )
    assert (doc["source_kind"], doc["dataset"], doc["licence"], doc["author"]) == ("dataset", "coco128", "CC BY 2.0", "ann")
    assert (doc["camera_make"], doc["camera_model"]) == ("Canon", "EOS 5D")
    assert doc["captured_at"] == "2019-07-04T00:00:00+00:00"
    assert doc["is_near_duplicate"] and doc["near_duplicate_of"] == "cd" * 32 and doc["thumbnail"]
    assert "mat" in doc["text"] and "coco128" in doc["text"]
    assert "gps" not in str(doc)
