"""The dataset's images in RGB: 16-bit grey scaled to 8 bits, not clipped to white."""

import numpy as np
from PIL import Image

from services.datasets.detection import as_rgb
from tests.photos import skimage_photo


def test_a_16_bit_grey_photo_keeps_its_tones():
    import io

    grey = np.asarray(Image.open(io.BytesIO(skimage_photo("camera.png"))).convert("L"), dtype=np.uint16)
    wide = Image.fromarray(grey * 257)  # the same photo in 16 bits: 0-255 → 0-65535
    assert wide.mode.startswith("I")
    rgb = np.asarray(as_rgb(wide))
    assert rgb.shape == (*grey.shape, 3)
    assert np.array_equal(rgb[..., 0], grey)  # not 99.6% white, as Pillow's convert("RGB") makes it
    small = Image.fromarray(grey.astype(np.int32), "I")  # 32-bit grey holding 8-bit values stays as it is
    assert np.array_equal(np.asarray(as_rgb(small))[..., 1], grey)
    assert np.asarray(as_rgb(Image.open(io.BytesIO(skimage_photo("astronaut.png"))))).shape[2] == 3
