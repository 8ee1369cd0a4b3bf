"""Derivatives of an image: the thumbnail and the optional standard-format copy.

Both are encoded from pixels only, with no EXIF, ICC or XMP block, so
nothing the original carried (a GPS position above all) leaks into them.
Without an ICC profile a viewer takes pixels as sRGB. So an RGB image that
carries another profile (Adobe RGB, Display P3, a camera's own) gets its
derivatives converted to sRGB through that profile. Stripped but left
unconverted, they would show its colours washed out. Every encoder is given
``icc_profile=None``: Pillow otherwise copies the profile of the image it
saves from (the photo's own, or the sRGB tag littleCMS puts on its output).
"""

from __future__ import annotations

import functools
import io
from types import ModuleType

import numpy as np
from PIL import Image, ImageCms

HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "F")


def to_8bit(image: Image.Image) -> Image.Image:
    """A grey 8-bit copy of a 16-bit or float image, stretched to its own range."""
    pixels = np.asarray(image, dtype=np.float32)
    low, high = float(pixels.min()), float(pixels.max())
    scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    return Image.fromarray(scaled.astype(np.uint8), "L")


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransformFromOpenProfiles(ImageCms.createProfile("LAB"), _srgb(), "LAB", "RGB")


def from_lab(image: Image.Image) -> Image.Image:
    """sRGB pixels of a CIELAB image (scanners' and Photoshop's TIFFs), through littleCMS: Pillow converts
    LAB to no other mode by itself, so hashes and derivatives start from this."""
    return ImageCms.applyTransform(image, _lab_to_srgb())


@functools.lru_cache(maxsize=32)
def srgb_transform(icc: bytes | None, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The conversion from an RGB image's embedded profile to sRGB; None when there is nothing to convert
    (no profile, an sRGB one, another mode) or the profile cannot be read (the pixels are then taken as sRGB)."""
    if not icc or mode != "RGB":
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower():
            return None  # sRGB already (IEC 61966-2.1 and the vendors' copies of it): the common case costs nothing
        return ImageCms.buildTransformFromOpenProfiles(profile, _srgb(), "RGB", "RGB")
    except (OSError, ImageCms.PyCMSError):
        return None


def _flatten(image: Image.Image) -> Image.Image:
    """RGB (or L) pixels; transparency composited on white; high bit depths scaled down."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in HIGH_DEPTH_MODES:
        return to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


@functools.cache
def _opencv() -> ModuleType:
    """OpenCV, loaded where thumbnails are made (the probe workers), not in every process importing this module.

    Probe workers are one process per core: OpenCV's own thread pool would only
    make them fight over the cores they already fill.
    """
    import cv2

    cv2.setNumThreads(1)
    return cv2


def shrink(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """An 8-bit L or RGB image reduced to ``size``, in OpenCV.

    Pillow's filtered resize is not vectorised: a bicubic 320 → 256 px step
    took 1.3-1.6 ms, a quarter of the whole probe. A JPEG reaches here
    already DCT-scaled to less than twice the target, where bilinear
    interpolation averages every source pixel (0.1-0.4 ms); a bigger step
    (PNG, WebP, …, decoded at full size) needs area averaging, or fine
    detail would alias into moiré.
    """
    cv2 = _opencv()
    pixels = np.asarray(image)
    shrinking_by_half_or_more = size[0] * 2 <= image.width or size[1] * 2 <= image.height
    interpolation = cv2.INTER_AREA if shrinking_by_half_or_more else cv2.INTER_LINEAR
    return Image.fromarray(cv2.resize(pixels, size, interpolation=interpolation), image.mode)


def encode_thumbnail(image: Image.Image, side: int, icc: bytes | None = None) -> bytes:
    flat = _flatten(image)
    scale = min(1.0, side / max(flat.size))
    size = (max(1, round(flat.width * scale)), max(1, round(flat.height * scale)))
    thumb = shrink(flat, size) if size != flat.size else flat
    if (transform := srgb_transform(icc, thumb.mode)) is not None:
        thumb = ImageCms.applyTransform(thumb, transform)  # after shrinking: a fraction of the pixels to convert
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=82, icc_profile=None)
    return out.getvalue()


def encode_standard(image: Image.Image, kind: str, icc: bytes | None = None) -> bytes:
    flat = _flatten(image)
    if (transform := srgb_transform(icc, flat.mode)) is not None:
        flat = ImageCms.applyTransform(flat, transform)
    out = io.BytesIO()
    if kind == "jpeg":
        flat.save(out, "JPEG", quality=92, icc_profile=None)
    else:
        flat.save(out, "PNG", icc_profile=None)
    return out.getvalue()


STANDARD_MIME = {"jpeg": "image/jpeg", "png": "image/png"}


def standard_key(sha256: str, kind: str) -> str:
    return f"standard/{sha256[:2]}/{sha256[2:4]}/{sha256}.{'jpg' if kind == 'jpeg' else 'png'}"
