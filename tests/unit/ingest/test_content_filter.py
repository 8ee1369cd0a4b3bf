"""The optional content filter, with the real NudeNet model (it ships in the wheel, runs offline)."""

import pytest

from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.probe import probe_image
from tests.photos import skimage_photo

LIMIT = 100_000_000


def test_off_by_default_and_an_ordinary_photo_passes_the_filter():
    data = skimage_photo("astronaut.png")  # a portrait of an astronaut in her suit
    assert probe_image(data, LIMIT)["sha256"]
    assert probe_image(data, LIMIT, content_filter="nudenet")["sha256"]


def test_the_model_really_runs_and_blocked_classes_refuse():
    # Blocking a class the model finds in this photo (a face) proves detection and refusal end to end.
    with pytest.raises(ImageRefused) as caught:
        probe_image(skimage_photo("astronaut.png"), LIMIT, content_filter="nudenet", content_classes=("FACE_FEMALE",))
    assert caught.value.reason == "content_filtered"
    assert "FACE_FEMALE" in caught.value.message
