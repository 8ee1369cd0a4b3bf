"""Perceptual hashes of an uploaded query image, computed exactly as ingest computes them.

Runs in a worker process (``adapters.hasher``): decoding is CPU work.
"""

from __future__ import annotations

import io
import warnings

import imagehash
from PIL import Image, UnidentifiedImageError

# The same basis as ingest's probe: grey, box-reduced towards 256 px (the hashes resize to 32 px anyway).
HASH_BASIS_SIDE = 256
MAX_PIXELS = 100_000_000


class NotAnImage(ValueError):
    """The uploaded bytes are not an image Pillow can decode."""


def hash_image(data: bytes) -> dict[str, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise NotAnImage(f"the image has {image.width * image.height:,} pixels, over {MAX_PIXELS:,}")
            image.load()
    except NotAnImage:
        raise
    except UnidentifiedImageError:  # its own text names the buffer it read: '<_io.BytesIO object at 0x…>'
        raise NotAnImage("its bytes match no image format this service reads") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
        raise NotAnImage(f"{type(exc).__name__}: {exc}") from None
    grey = image.convert("L")
    factor = max(1, min(grey.size) // HASH_BASIS_SIDE)
    basis = grey.reduce(factor) if factor > 1 else grey
    return {"phash": str(imagehash.phash(basis)), "dhash": str(imagehash.dhash(basis))}
