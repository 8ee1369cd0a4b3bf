"""Elasticsearch's time values (``5m``, ``90s``, ``1h``) in seconds: the cursors' keep-alive is one."""

from __future__ import annotations

import re

UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
DURATION = re.compile(r"(\d+)(d|h|m|s|ms)")


def duration_seconds(value: str) -> float:
    """``value`` in seconds; ValueError for anything but a whole number and one of d, h, m, s, ms."""
    match = DURATION.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as '5m', '90s' or '1h'")
    return int(match.group(1)) * UNITS[match.group(2)]
