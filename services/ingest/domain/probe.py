"""Probing bytes: is this an image we accept, and what are its facts?

Pure CPU work, run in a worker process. Pillow is only allowed to open the
formats we accept, so a file is never handed to a plugin we did not choose
(EPS would start Ghostscript); a few refused formats are named from their
magic bytes so the message says what the file was.

One decode serves everything: a JPEG is decoded with DCT scaling (Pillow's
``draft``) straight to about the thumbnail's size, which still reads every
byte of the entropy-coded data, so truncation is caught; other formats are
decoded in full. The thumbnail and the perceptual hashes are made from that
decode, with the EXIF orientation applied.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from typing import Any

import imagehash
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from services.ingest.domain.derivatives import HIGH_DEPTH_MODES, encode_standard, encode_thumbnail, from_lab, to_8bit
from services.ingest.domain.content import EXPLICIT, judge
from services.ingest.domain.errors import ImageRefused
from services.ingest.domain.exif import read_exif
from services.ingest.domain.sniff import ACCEPTED_FORMATS, ACCEPTED_LIST, name_accepted_format, name_refused_format

# Pillow's own bomb check is global and fires inside open() with a message that
# cannot name the size. The budget is enforced below instead, from the parsed
# header and before a single pixel is decoded, against the configured limit.
Image.MAX_IMAGE_PIXELS = None

# Shortest side of the reduced copy that perceptual hashes are computed on (pHash
# resamples to 32 × 32, dHash to 9 × 8): a box reduction to about this size first
# makes their Lanczos resize cheap.
HASH_BASIS_SIDE = 64


def _open(data: bytes, sha256: str) -> Image.Image:
    refused = name_refused_format(data[:1024])
    if refused:
        raise ImageRefused(
            "unsupported_format", f"{refused} files are not accepted; send {ACCEPTED_LIST}.", sha256=sha256
        )
    try:
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        claimed = name_accepted_format(data[:16])
        if claimed:
            raise ImageRefused(
                "corrupt", f"The file starts like {claimed} but its header cannot be read.", sha256=sha256
            ) from None
        raise ImageRefused(
            "not_an_image", f"The bytes are not an image in an accepted format ({ACCEPTED_LIST}).", sha256=sha256
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused("decompression_bomb", str(exc), sha256=sha256) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRefused("corrupt", f"The image header is invalid: {exc}.", sha256=sha256) from None


def probe_image(
    data: bytes,
    max_pixels: int,
    *,
    expected_sha256: str | None = None,
    thumbnail_side: int = 256,
    standard_copy: str = "none",
    max_frames: int = 1000,
    content_filter: str = "none",
    content_threshold: float = 0.6,
    content_classes: tuple[str, ...] = EXPLICIT,
) -> dict[str, Any]:
    """Validate and describe an image; raise :class:`ImageRefused` with a reason otherwise.

    Returns a plain dict (cheap to send back from a worker process): the facts,
    ``exif``, the ``thumbnail`` JPEG bytes and, if asked for, the ``standard`` copy.
    """
    if not data:
        raise ImageRefused("empty", "The file is empty (0 bytes).")
    sha256 = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and expected_sha256.lower() != sha256:
        raise ImageRefused(
            "checksum_mismatch",
            f"The bytes have SHA-256 {sha256}, not the {expected_sha256} the sender gave: they changed on the way.",
            sha256=sha256,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open(data, sha256)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageRefused(
                "decompression_bomb",
                f"The image declares {width}×{height} = {width * height:,} pixels, over the limit of {max_pixels:,}.",
                sha256=sha256,
            )
        if width < 1 or height < 1:
            raise ImageRefused("corrupt", f"The image declares an empty size {width}×{height}.", sha256=sha256)
        fmt = "JPEG" if image.format == "MPO" else (image.format or "unknown")
        _check_frames(image, fmt, max_frames, sha256)
        if fmt == "JPEG" and standard_copy == "none":
            scale = thumbnail_side / max(width, height)
            if scale < 1:
                image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
        try:
            image.load()  # decode every byte: truncated or corrupt data fails here (first frame only)
        except MemoryError:
            raise ImageRefused(
                "too_large", "Decoding the image needs more memory than a worker may use.", sha256=sha256
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            raise ImageRefused("corrupt", f"The {fmt} data could not be decoded: {exc}.", sha256=sha256) from None

    exif = read_exif(image)
    icc = image.info.get("icc_profile")
    oriented = _orient(image)
    if oriented.mode == "LAB":
        oriented = from_lab(oriented)
    verdict = judge(oriented, content_filter, content_threshold, content_classes) if content_filter != "none" else None
    if verdict is not None and verdict.blocked:
        found = ", ".join(f"{c} ({verdict.scores[c]:.2f})" for c in verdict.blocked)
        raise ImageRefused("content_filtered", f"The content filter refused the image: {found}.", sha256=sha256)
    basis = _hash_basis(oriented)
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
        "exif": exif,
        "thumbnail": encode_thumbnail(oriented, thumbnail_side, icc),
        "standard": encode_standard(oriented, standard_copy, icc) if standard_copy != "none" else None,
    }


def _check_frames(image: Image.Image, fmt: str, max_frames: int, sha256: str) -> None:
    """Only the first frame is decoded, but a file of thousands of frames is refused outright.

    Counting walks the frame headers without decoding pixels.
    """
    if fmt == "JPEG":
        return
    try:
        frames = getattr(image, "n_frames", 1)
        image.seek(0)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRefused("corrupt", f"The {fmt} frames cannot be read: {exc}.", sha256=sha256) from None
    if frames > max_frames:
        raise ImageRefused(
            "too_many_frames", f"The {fmt} has {frames:,} frames, over the limit of {max_frames:,}.", sha256=sha256
        )


def _orient(image: Image.Image) -> Image.Image:
    """The pixels upright; the image itself when its EXIF orientation needs no turn (Pillow would copy it)."""
    try:
        if image.getexif().get(ExifTags.Base.Orientation) not in range(2, 9):
            return image
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken orientation tag leaves the pixels as stored
        return image


def _hash_basis(image: Image.Image) -> Image.Image:
    """A grey copy reduced by a cheap box filter: the hashes resize to 32 px anyway."""
    grey = to_8bit(image) if image.mode in HIGH_DEPTH_MODES else image.convert("L")
    factor = max(1, min(grey.size) // HASH_BASIS_SIDE)
    return grey.reduce(factor) if factor > 1 else grey
