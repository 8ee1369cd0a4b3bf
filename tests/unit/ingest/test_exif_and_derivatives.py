"""EXIF is read into the document; derivatives are oriented and carry no metadata (no GPS)."""

import io

import numpy as np
from PIL import Image

from services.ingest.domain.probe import probe_image
from tests.photos import skimage_photo

LIMIT = 100_000_000


def photo_with_exif(orientation: int = 6) -> bytes:
    """A real photo (skimage's motorcycle, 741 × 500) re-saved as JPEG with camera, time, lens and GPS tags."""
    image = Image.open(io.BytesIO(skimage_photo("motorcycle_left.png"))).convert("RGB").crop((0, 0, 741, 480))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D Mark IV"
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = "2021:05:06 07:08:09"
    ifd[0xA434] = "EF50mm f/1.8 STM"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (33.0, 51.0, 36.0), "E", (151.0, 12.0, 36.0)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def test_exif_fields_are_extracted():
    facts = probe_image(photo_with_exif(), LIMIT)
    exif = facts["exif"]
    assert exif["camera_make"] == "Canon"
    assert exif["camera_model"] == "Canon EOS 5D Mark IV"
    assert exif["lens"] == "EF50mm f/1.8 STM"
    assert exif["captured_at"] == "2021-05-06T07:08:09"
    assert exif["gps"] == {"lat": -33.86, "lon": 151.21}


def test_thumbnail_is_oriented_small_and_carries_no_metadata():
    facts = probe_image(photo_with_exif(orientation=6), LIMIT)
    assert (facts["width"], facts["height"]) == (741, 480)  # as stored
    thumb = Image.open(io.BytesIO(facts["thumbnail"]))
    assert thumb.format == "JPEG"
    assert max(thumb.size) == 256
    assert thumb.size[1] > thumb.size[0]  # orientation 6 turns the landscape photo upright
    assert not thumb.getexif()
    assert b"Exif" not in facts["thumbnail"][:4096]


def test_standard_copy_is_metadata_free_and_oriented():
    facts = probe_image(photo_with_exif(orientation=6), LIMIT, standard_copy="png")
    copy = Image.open(io.BytesIO(facts["standard"]))
    assert (copy.format, copy.size) == ("PNG", (480, 741))
    assert not copy.getexif()


def test_no_derivative_carries_an_icc_profile():
    """astronaut.png carries an sRGB profile, rocket.jpg an Adobe RGB one: Pillow would copy either into
    a PNG or JPEG it saves from the decoded image, unless told not to."""
    for photo in ("astronaut.png", "rocket.jpg"):
        for kind in ("png", "jpeg"):
            facts = probe_image(skimage_photo(photo), LIMIT, standard_copy=kind)
            for derivative in (facts["thumbnail"], facts["standard"]):
                assert "icc_profile" not in Image.open(io.BytesIO(derivative)).info, (photo, kind)


def test_photo_without_exif_has_empty_exif_and_a_thumbnail():
    facts = probe_image(skimage_photo("astronaut.png"), LIMIT)
    assert facts["exif"] == {}
    assert Image.open(io.BytesIO(facts["thumbnail"])).size == (256, 256)


def test_jpeg_reduced_decode_gives_the_same_hashes_for_a_reencoded_copy():
    """pHash on the reduced decode is stable: the same photo at another JPEG quality hashes within a few bits."""
    from services.ingest.domain.hashes import hamming

    image = Image.open(io.BytesIO(skimage_photo("chelsea.png"))).convert("RGB")
    copies = []
    for quality in (95, 70):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality)
        copies.append(probe_image(buf.getvalue(), LIMIT))
    assert copies[0]["sha256"] != copies[1]["sha256"]
    assert hamming(copies[0]["phash"], copies[1]["phash"]) <= 4


def _psnr(a: Image.Image, b: Image.Image) -> float:

    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(10 * np.log10(255**2 / np.mean((x - y) ** 2)))


def test_thumbnail_of_fine_stripes_is_averaged_not_aliased():
    """One-pixel black and white stripes shrunk 7.8 × must come out an even grey, not moiré bands."""

    stripes = np.zeros((2000, 2000), np.uint8)
    stripes[:, ::2] = 255
    buf = io.BytesIO()
    Image.fromarray(stripes, "L").save(buf, "PNG")
    thumb = np.asarray(Image.open(io.BytesIO(probe_image(buf.getvalue(), LIMIT)["thumbnail"])), np.float64)
    assert thumb.shape == (256, 256)
    assert abs(thumb.mean() - 127.5) < 3
    assert thumb.std() < 4  # interpolating between neighbours only gives beats of dark and light columns


def test_thumbnail_is_close_to_a_full_resolution_lanczos_reduction():
    """The fast path (JPEG decoded at reduced scale, then bilinear; PNG area-averaged) loses no visible quality."""
    photo = Image.open(io.BytesIO(skimage_photo("chelsea.png"))).convert("RGB").resize((1200, 900), Image.Resampling.LANCZOS)
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        photo.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        thumb = Image.open(io.BytesIO(probe_image(buf.getvalue(), LIMIT)["thumbnail"])).convert("RGB")
        reference = photo.resize(thumb.size, Image.Resampling.LANCZOS)
        assert _psnr(thumb, reference) > 30, fmt


def test_a_cielab_tiff_is_taken_with_the_hashes_and_colours_of_its_rgb_original():
    """Scanners and Photoshop write CIELAB TIFFs; Pillow converts LAB to no other mode by itself, which
    made such a photo an ``undecodable`` rejection."""
    from PIL import ImageCms

    rgb = Image.open(io.BytesIO(skimage_photo("coffee.png"))).convert("RGB")
    to_lab = ImageCms.buildTransformFromOpenProfiles(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    lab_tiff, rgb_png = io.BytesIO(), io.BytesIO()
    ImageCms.applyTransform(rgb, to_lab).save(lab_tiff, "TIFF")
    rgb.save(rgb_png, "PNG")
    lab, original = probe_image(lab_tiff.getvalue(), LIMIT, standard_copy="jpeg"), probe_image(rgb_png.getvalue(), LIMIT)
    assert (lab["format"], lab["mode"]) == ("TIFF", "LAB")
    assert (lab["phash"], lab["dhash"]) == (original["phash"], original["dhash"])
    ours, theirs = (np.asarray(Image.open(io.BytesIO(p["thumbnail"])).convert("RGB"), dtype=int) for p in (lab, original))
    assert np.abs(ours - theirs).mean() < 3  # the same colours, not a grey or false-colour rendering
    assert Image.open(io.BytesIO(lab["standard"])).mode == "RGB"


def _colour_check(data: bytes) -> tuple[float, float]:
    """(how far the thumbnail's mean colour is from the photo's colours converted to sRGB through its profile,
    how far the unconverted pixels' mean colour is from them), in 8-bit levels averaged over R, G and B."""
    from PIL import ImageCms

    photo = Image.open(io.BytesIO(data))
    profile = ImageCms.ImageCmsProfile(io.BytesIO(photo.info["icc_profile"]))
    managed = ImageCms.profileToProfile(photo.convert("RGB"), profile, ImageCms.createProfile("sRGB"))
    thumbnail = Image.open(io.BytesIO(probe_image(data, LIMIT)["thumbnail"]))
    assert "icc_profile" not in thumbnail.info  # converted, then stripped like every other block

    def mean(image: Image.Image) -> np.ndarray:
        return np.asarray(image.convert("RGB"), np.float64).reshape(-1, 3).mean(axis=0)

    return float(np.abs(mean(thumbnail) - mean(managed)).mean()), float(np.abs(mean(photo) - mean(managed)).mean())


def test_an_adobe_rgb_photo_gets_a_thumbnail_in_its_own_colours():
    """scikit-image's rocket.jpg carries an Adobe RGB (1998) profile. A viewer takes a thumbnail without a
    profile as sRGB, so the thumbnail must be converted to sRGB, not only stripped."""
    ours, unconverted = _colour_check(skimage_photo("rocket.jpg"))
    assert unconverted > 3  # the photo is one where it shows
    assert ours < 0.5


def test_every_coco_photo_with_a_wide_gamut_or_camera_profile_keeps_its_colours():
    from PIL import ImageCms

    from tests.photos import require_coco

    checked = []
    for path in sorted((require_coco() / "images").glob("*.jpg")):
        data = path.read_bytes()
        icc = Image.open(io.BytesIO(data)).info.get("icc_profile")
        if icc and "srgb" not in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower():
            checked.append((path.name, *_colour_check(data)))
    assert len(checked) >= 20, checked  # Adobe RGB, camera and display profiles in the sample
    assert all(ours < 2 for _, ours, _ in checked), checked
    assert sum(ours for _, ours, _ in checked) < sum(unconverted for _, _, unconverted in checked) / 5
