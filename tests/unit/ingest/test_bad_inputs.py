"""Every bad input is refused by the probe with its reason; the wrong extension is not bad."""

import pytest

from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.probe import probe_image
from tests.unit.ingest.bad_inputs import bad_inputs, many_frame_gif, wrong_extension

LIMIT = 100_000_000


@pytest.mark.parametrize(("name", "data", "reason"), bad_inputs(), ids=[b[0] for b in bad_inputs()])
def test_bad_input_is_refused_with_its_reason(name, data, reason):
    with pytest.raises(ImageRefused) as caught:
        probe_image(data, LIMIT)
    assert caught.value.reason == reason
    assert caught.value.message


def test_a_gif_under_the_frame_limit_is_read_from_its_first_frame():
    facts = probe_image(many_frame_gif(50), LIMIT, max_frames=100)
    assert (facts["format"], facts["width"], facts["height"]) == ("GIF", 1, 1)


def test_wrong_extension_is_judged_by_the_bytes():
    _, data = wrong_extension()
    assert probe_image(data, LIMIT)["format"] == "PNG"


def test_checksum_mismatch_is_refused():
    _, data = wrong_extension()
    with pytest.raises(ImageRefused) as caught:
        probe_image(data, LIMIT, expected_sha256="0" * 64)
    assert caught.value.reason == "checksum_mismatch"
