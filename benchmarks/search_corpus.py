"""Synthetic image documents for the search benchmark: realistic distributions, seeded.

Labels are the COCO category names with Zipf-like frequencies (0–6 per image,
a fifth of images unannotated), tags from a vocabulary with a long tail,
formats, sizes and dates as photo collections have them, random 64-bit
perceptual hashes with planted near-duplicates (2 % of images copy an earlier
image's hash with 0–6 bits flipped and name it in ``near_duplicate_of``).
Deterministic for a seed, so the hashes can be regenerated for brute force
instead of being read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

COCO_INSTANCES = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco128" / "annotations" / "instances.json"
FALLBACK_LABELS = ["person", "car", "chair", "book", "bottle", "cup", "dining table", "bowl", "traffic light", "handbag", "umbrella", "bird", "boat", "truck", "bench", "sheep", "banana", "kite", "motorcycle", "backpack", "potted plant", "cow", "wine glass", "carrot", "dog", "cat", "horse", "bicycle", "clock", "cell phone"]
TAG_WORDS = "outdoor indoor night day city street beach mountain snow rain portrait landscape macro food animal sport travel family party market kitchen office park river forest sunset sunrise vintage blurry bright dark crowd vehicle architecture museum garden winter summer autumn spring festival concert train airport harbour desert road bridge tower church school".split()
FORMATS = (["jpeg", "png", "webp", "gif", "tiff"], [0.80, 0.13, 0.04, 0.02, 0.01])
SIZES = [(640, 480), (800, 600), (1024, 768), (1280, 720), (1920, 1080), (2048, 1536), (3024, 4032), (4032, 3024), (6000, 4000), (500, 375), (333, 500), (1080, 1080)]
START = datetime(2022, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 4 * 365 * 24 * 3600


def label_names() -> list[str]:
    if COCO_INSTANCES.exists():
        return [c["name"] for c in json.loads(COCO_INSTANCES.read_text())["categories"]]
    return FALLBACK_LABELS


def zipf_weights(n: int, s: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def hashes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pHash and dHash columns, and for each image the index of the image it nearly duplicates (-1: none)."""
    rng = np.random.default_rng(seed)
    phash = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    dhash = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    of = np.full(n, -1, dtype=np.int64)
    dups = rng.choice(np.arange(1000, n), size=n // 50, replace=False)
    for i in dups:
        j = int(rng.integers(0, i))
        while of[j] >= 0:  # duplicate an original, not a duplicate
            j = int(of[j])
        flips = rng.choice(64, size=int(rng.integers(0, 7)), replace=False)
        mask = np.uint64(sum(1 << int(b) for b in flips))
        phash[i] = phash[j] ^ mask
        dhash[i] = dhash[j] ^ mask
        of[i] = j
    return phash, dhash, of


def image_id(i: int) -> str:
    return f"{i:064x}"


def documents(n: int, seed: int = 42) -> Iterator[tuple[dict, dict | None]]:
    """(images document, annotation summary) pairs, as MongoDB would hold them."""
    rng = np.random.default_rng(seed + 1)
    labels, tags = label_names(), TAG_WORDS
    label_w, tag_w = zipf_weights(len(labels)), zipf_weights(len(tags), 0.9)
    sources = [f"source-{k}" for k in range(20)]
    source_w = zipf_weights(len(sources))
    phash, dhash, of = hashes(n, seed)
    fmt = rng.choice(FORMATS[0], size=n, p=FORMATS[1])
    size = rng.integers(0, len(SIZES), size=n)
    created = rng.integers(0, SPAN_SECONDS, size=n)
    captured = rng.integers(-5 * 365 * 24 * 3600, 0, size=n)
    n_labels = rng.choice(7, size=n, p=[0.2, 0.3, 0.2, 0.12, 0.09, 0.06, 0.03])
    n_tags = rng.integers(0, 5, size=n)
    source = rng.choice(len(sources), size=n, p=source_w)
    uploader = rng.integers(0, 500, size=n)
    has_capture = rng.random(n) < 0.7
    # Every image's labels and tags drawn in one go, then sliced per image.
    label_picks = rng.choice(len(labels), size=int(n_labels.sum()), p=label_w)
    label_start = np.concatenate([[0], np.cumsum(n_labels)])
    tag_picks = rng.choice(len(tags), size=int(n_tags.sum()), p=tag_w)
    tag_start = np.concatenate([[0], np.cumsum(n_tags)])
    for i in range(n):
        w, h = SIZES[size[i]]
        image = {
            "_id": image_id(i), "version": 1, "sha256": image_id(i), "width": w, "height": h, "format": fmt[i],
            "bytes": int(w * h * 0.35), "tags": [tags[t] for t in dict.fromkeys(tag_picks[tag_start[i] : tag_start[i + 1]].tolist())],
            "source": sources[source[i]], "uploader": f"user-{uploader[i]}", "filename": f"IMG_{i:07d}.{fmt[i]}",
            "phash": f"{int(phash[i]):016x}", "dhash": f"{int(dhash[i]):016x}",
            "created_at": START + timedelta(seconds=int(created[i])),
            "captured_at": START + timedelta(seconds=int(created[i] + captured[i])) if has_capture[i] else None,
            "near_duplicate_of": image_id(int(of[i])) if of[i] >= 0 else None,
        }
        summary = None
        if n_labels[i]:
            counts: dict[str, int] = {}
            for k in label_picks[label_start[i] : label_start[i + 1]].tolist():
                counts[labels[k]] = counts.get(labels[k], 0) + 1
            summary = {"_id": image_id(i), "version": 1, "labels": counts, "types": {"bbox": int(n_labels[i])}, "count": int(n_labels[i])}
        yield image, summary
