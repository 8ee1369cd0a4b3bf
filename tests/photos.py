"""Real photographs for tests: the ones the scikit-image wheel ships, and the COCO sample.

The COCO sample (``../shared/data/coco128``) sits beside the repository in
development and CI but not in a user's clone; it is found through the
``CORPUS_TEST_DATA`` setting, and tests that need it skip, saying why, where
it is absent.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest
import skimage
from PIL import Image, PngImagePlugin

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent


def skimage_photo(name: str) -> bytes:
    return (SKIMAGE_DATA / name).read_bytes()


def unique_png(data: bytes) -> bytes:
    """A real photo re-saved as PNG with a unique text chunk: the same pixels, bytes (and so an id) of its own,
    for a test that stores a sample photo other tests of the session also store."""
    info = PngImagePlugin.PngInfo()
    info.add_text("test", uuid.uuid4().hex)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def skimage_photos() -> list[Path]:
    """Every image file the scikit-image wheel carries (PNG, JPEG, GIF, TIFF)."""
    return sorted(p for p in SKIMAGE_DATA.iterdir() if p.suffix.lower() in {".png", ".jpg", ".gif", ".tif"})


def coco_dir() -> Path | None:
    configured = os.environ.get("CORPUS_TEST_DATA")
    candidates = [Path(configured) / "coco128"] if configured else []
    candidates.append(REPO.parent / "shared" / "data" / "coco128")
    for candidate in candidates:
        if (candidate / "images").is_dir():
            return candidate
    return None


def require_coco() -> Path:
    found = coco_dir()
    if found is None:
        pytest.skip("COCO sample not found: set CORPUS_TEST_DATA to the folder that holds coco128/")
    return found
