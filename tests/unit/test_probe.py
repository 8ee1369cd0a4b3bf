"""Probing real photos and broken bytes (the pure part of ingest's pipeline)."""

import hashlib
import io

import pytest
from PIL import Image

from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.probe import probe_image
from tests.photos import skimage_photo, skimage_photos

LIMIT = 100_000_000


def _pillow_reads(path) -> bool:
    try:
        with Image.open(path) as img:
            img.load()
    except Exception:
        return False
    return True


READABLE = [p for p in skimage_photos() if _pillow_reads(p)]
UNREADABLE = [p for p in skimage_photos() if not _pillow_reads(p)]


def test_the_wheel_ships_enough_real_photos():
    assert len(READABLE) >= 20


@pytest.mark.parametrize("path", READABLE, ids=lambda p: p.name)
def test_every_shipped_photo_is_accepted_with_its_real_facts(path):
    data = path.read_bytes()
    facts = probe_image(data, LIMIT)
    with Image.open(path) as img:
        assert (facts["width"], facts["height"]) == img.size
        assert facts["format"] == img.format
    assert facts["sha256"] == hashlib.sha256(data).hexdigest()
    assert facts["bytes"] == len(data)
    assert len(facts["phash"]) == 16 and len(facts["dhash"]) == 16


@pytest.mark.parametrize("path", UNREADABLE, ids=lambda p: p.name)
def test_a_real_file_pillow_cannot_read_is_refused_naming_its_format(path):
    refusal = _refusal(path.read_bytes())
    assert refusal.reason == "corrupt"
    assert "starts like TIFF" in refusal.message


def _refusal(data: bytes, limit: int = LIMIT) -> ImageRefused:
    with pytest.raises(ImageRefused) as caught:
        probe_image(data, limit)
    return caught.value


def test_empty_bytes():
    assert _refusal(b"").reason == "empty"


def test_text_is_not_an_image():
    refusal = _refusal(b"hello, I am a text file renamed .jpg\n" * 10)
    assert refusal.reason == "not_an_image"
    assert "JPEG, PNG" in refusal.message


@pytest.mark.parametrize(
    ("head", "named"),
    [
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "EPS"),
        (b"%PDF-1.7\n", "PDF"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
    ],
)
def test_refused_formats_are_named(head, named):
    refusal = _refusal(head + b"\x00" * 64)
    assert refusal.reason == "unsupported_format"
    assert named in refusal.message


def test_truncated_jpeg_is_corrupt():
    data = skimage_photo("rocket.jpg")
    refusal = _refusal(data[: len(data) // 2])
    assert refusal.reason == "corrupt"
    assert refusal.sha256 == hashlib.sha256(data[: len(data) // 2]).hexdigest()


def test_pixel_budget_refuses_a_header_bomb_before_decoding():
    # A real PNG whose header declares 30000 x 30000 pixels (mode "1" keeps it small on disk).
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, "PNG")
    refusal = _refusal(buf.getvalue())
    assert refusal.reason == "decompression_bomb"
    assert "30000×30000" in refusal.message


def test_limit_is_configurable():
    data = skimage_photo("camera.png")  # 512 x 512
    assert _refusal(data, limit=512 * 512 - 1).reason == "decompression_bomb"
    assert probe_image(data, 512 * 512)["width"] == 512


def test_near_identical_images_have_close_hashes_and_different_sha():
    original = Image.open(io.BytesIO(skimage_photo("chelsea.png"))).convert("RGB")
    a, b = io.BytesIO(), io.BytesIO()
    original.save(a, "JPEG", quality=95)
    original.resize((original.width // 2, original.height // 2)).save(b, "JPEG", quality=70)
    fa, fb = probe_image(a.getvalue(), LIMIT), probe_image(b.getvalue(), LIMIT)
    assert fa["sha256"] != fb["sha256"]
    distance = bin(int(fa["phash"], 16) ^ int(fb["phash"], 16)).count("1")
    assert distance <= 6
    other = probe_image(skimage_photo("astronaut.png"), LIMIT)
    assert bin(int(fa["phash"], 16) ^ int(other["phash"], 16)).count("1") > 16


def test_refusal_survives_pickling_back_from_a_worker():
    import pickle

    refusal = ImageRefused("corrupt", "bad", sha256="ab")
    back = pickle.loads(pickle.dumps(refusal))
    assert (back.reason, back.message, back.sha256) == ("corrupt", "bad", "ab")
