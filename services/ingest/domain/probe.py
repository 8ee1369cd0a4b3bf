"""Probing bytes: is this an image we accept, and what are its facts?

Pure CPU work, run in a worker process. Pillow is only allowed to open the
formats we accept, so a file is never handed to a plugin we did not choose
(EPS would start Ghostscript); a few refused formats are named from their
magic bytes so the message says what the file was.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import imagehash
from PIL import Image, UnidentifiedImageError

from services.ingest.domain.errors import ImageRefused

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
ACCEPTED_LIST = "JPEG, PNG, WebP, GIF, BMP or TIFF"

# Pillow's own bomb check is global and fires inside open() with a message that
# cannot name the size. The budget is enforced below instead, from the parsed
# header and before a single pixel is decoded, against the configured limit.
Image.MAX_IMAGE_PIXELS = None

# Side of the reduced copy that perceptual hashes are computed on.
HASH_BASIS_SIDE = 256


_ACCEPTED_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _name_accepted_format(head: bytes) -> str | None:
    """The accepted format the magic bytes claim, if any (to explain a failed open)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _ACCEPTED_MAGIC if head.startswith(magic)), None)


def _name_refused_format(head: bytes) -> str | None:
    if head.startswith(b"%PDF"):
        return "PDF"
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        return "EPS/PostScript"
    if head.startswith(b"8BPS"):
        return "Photoshop PSD"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"mif1", b"msf1"):
            return "HEIC/HEIF"
        if brand in (b"avif", b"avis"):
            return "AVIF"
        return "ISO media (video)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG"
    return None


def probe_image(data: bytes, max_pixels: int) -> dict:
    """Validate and describe an image; raise :class:`ImageRefused` with a reason otherwise.

    Returns a plain dict (cheap to send back from a worker process).
    """
    if not data:
        raise ImageRefused("empty", "The file is empty (0 bytes).")
    sha256 = hashlib.sha256(data).hexdigest()

    refused = _name_refused_format(data[:1024])
    if refused:
        raise ImageRefused(
            "unsupported_format", f"{refused} files are not accepted; send {ACCEPTED_LIST}.", sha256=sha256
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except UnidentifiedImageError:
            claimed = _name_accepted_format(data[:16])
            if claimed:
                raise ImageRefused(
                    "corrupt", f"The file starts like {claimed} but its header cannot be read.", sha256=sha256
                ) from None
            raise ImageRefused(
                "not_an_image", f"The bytes are not an image in an accepted format ({ACCEPTED_LIST}).", sha256=sha256
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRefused("decompression_bomb", str(exc), sha256=sha256) from None

        width, height = image.size
        if width * height > max_pixels:
            raise ImageRefused(
                "decompression_bomb",
                f"The image declares {width}×{height} = {width * height:,} pixels, over the limit of {max_pixels:,}.",
                sha256=sha256,
            )
        if width < 1 or height < 1:
            raise ImageRefused("corrupt", f"The image declares an empty size {width}×{height}.", sha256=sha256)
        fmt = image.format or "unknown"
        try:
            image.load()  # full decode: truncated or corrupt data fails here
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRefused("corrupt", f"The {fmt} data could not be decoded: {exc}.", sha256=sha256) from None

    basis = _hash_basis(image)
    return {
        "sha256": sha256,
        "bytes": len(data),
        "format": fmt,
        "mime": Image.MIME.get(fmt, "application/octet-stream"),
        "width": width,
        "height": height,
        "mode": image.mode,
        "phash": str(imagehash.phash(basis)),
        "dhash": str(imagehash.dhash(basis)),
    }


def _hash_basis(image: Image.Image) -> Image.Image:
    """A grey copy reduced by a cheap box filter: the hashes resize to 32 px anyway."""
    grey = image.convert("L")
    factor = max(1, min(grey.size) // HASH_BASIS_SIDE)
    return grey.reduce(factor) if factor > 1 else grey
