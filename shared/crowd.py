"""How an annotation's COCO ``iscrowd`` is read, by the COCO export and the PyTorch dataset alike.

A module of its own that imports nothing: the dataset loads it in every DataLoader worker, and
``shared.readmodels`` would bring pydantic and the event models with it (half a second).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_crowd(annotation: Mapping[str, Any]) -> int:
    """A COCO import's own flag when it has one, else 1 for an RLE mask (COCO's crowd regions are RLE) and 0
    for anything else."""
    flag = (annotation.get("attributes") or {}).get("iscrowd")
    return int(flag) if flag in (0, 1) else int(annotation.get("type") == "mask")
