"""The optional content filter: a pluggable classifier run in the worker on the decoded image.

Off by default (``CORPUS_CONTENT_FILTER=none``). ``nudenet`` runs the NudeNet
detector offline (its ONNX model ships inside the wheel; install the
``content-filter`` extra). A classifier returns the classes it saw with their
scores; the image is refused when a blocked class scores at or above the
threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Protocol

from PIL import Image

# NudeNet's classes that mean explicit content.
EXPLICIT = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)


@dataclass(frozen=True)
class Verdict:
    scores: dict[str, float]  # class → best score seen
    blocked: tuple[str, ...]  # the classes that refuse the image (empty: allowed)


class ContentClassifier(Protocol):
    def classify(self, image: Image.Image) -> dict[str, float]: ...


class NoFilter:
    def classify(self, image: Image.Image) -> dict[str, float]:
        return {}


class NudeNetFilter:
    def __init__(self) -> None:
        from nudenet import NudeDetector  # optional dependency: the content-filter extra

        self._detector = NudeDetector()

    def classify(self, image: Image.Image) -> dict[str, float]:
        import numpy as np

        scores: dict[str, float] = {}
        for found in self._detector.detect(np.asarray(image.convert("RGBA"))):
            scores[found["class"]] = max(scores.get(found["class"], 0.0), round(float(found["score"]), 4))
        return scores


@cache
def classifier(name: str) -> ContentClassifier:
    """One classifier per worker process (the model loads once)."""
    if name == "none":
        return NoFilter()
    if name == "nudenet":
        return NudeNetFilter()
    raise ValueError(f"unknown content filter {name!r}")


def judge(image: Image.Image, name: str, threshold: float, blocked_classes: tuple[str, ...] = EXPLICIT) -> Verdict:
    scores = classifier(name).classify(image)
    return Verdict(scores, tuple(sorted(c for c, s in scores.items() if c in blocked_classes and s >= threshold)))
