from datetime import UTC, datetime

from services.search.domain.documents import image_document
from shared.events import ImageIngested


def test_search_document_derives_shape_fields_and_free_text():
    event = ImageIngested(
        image_id="ab" * 32,
        version=3,
        sha256="ab" * 32,
        width=640,
        height=480,
        format="JPEG",
        bytes=1000,
        tags=["tabby cat", "indoor"],
        source="flickr",
        filename="photos/My_Cat-2024.jpg",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    doc = image_document(event)
    assert doc["megapixels"] == 0.3072
    assert doc["aspect_ratio"] == 1.3333
    assert doc["format"] == "jpeg"
    assert doc["version"] == 3
    assert doc["text"] == "tabby cat indoor My Cat 2024 jpg flickr"
