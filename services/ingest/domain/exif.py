"""What a photo's EXIF says: camera, lens, capture time and GPS position.

Only the document keeps these; derivatives (thumbnails, standard copies) are
written without any metadata, so a GPS position never leaves the document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PIL import Image

MAKE, MODEL, DATETIME, EXIF_IFD, GPS_IFD = 0x010F, 0x0110, 0x0132, 0x8769, 0x8825
DATETIME_ORIGINAL, LENS_MAKE, LENS_MODEL = 0x9003, 0xA433, 0xA434
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value[:200] or None


def _when(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _degrees(value: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    degrees = d + m / 60 + s / 3600
    return round(-degrees if _text(ref) in ("S", "W") else degrees, 7)


def read_exif(image: Image.Image) -> dict[str, Any]:
    """Camera, lens, capture time (ISO, no zone: EXIF has none) and GPS, each only when present."""
    try:
        exif = image.getexif()
        ifd = exif.get_ifd(EXIF_IFD)
        gps = exif.get_ifd(GPS_IFD)
    except Exception:  # noqa: BLE001 - broken metadata never refuses an image that decodes
        return {}
    found: dict[str, Any] = {
        "camera_make": _text(exif.get(MAKE)),
        "camera_model": _text(exif.get(MODEL)),
        "lens": _text(ifd.get(LENS_MODEL)),
        "captured_at": _when(ifd.get(DATETIME_ORIGINAL) or exif.get(DATETIME)),
    }
    lat, lon = _degrees(gps.get(GPS_LAT), gps.get(GPS_LAT_REF)), _degrees(gps.get(GPS_LON), gps.get(GPS_LON_REF))
    if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
        found["gps"] = {"lat": lat, "lon": lon}
    return {key: value for key, value in found.items() if value is not None}
