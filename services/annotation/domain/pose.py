"""What a YOLO pose export (Ultralytics) needs beyond boxes: the one keypoint schema of the dataset, the
points of a label line, and ``flip_idx`` (each keypoint's partner when the image is mirrored).

Ultralytics reads one ``kpt_shape: [K, 3]`` for the whole dataset, so every line carries the same K
points, in the same order. The schema is the labels' (``shared/keypoint_schema.py``): the exported classes
must share one, or have none and carry no points (their boxes are written with every point ``0 0 0``).
Pure functions, no I/O; ingest's YOLO reader (``services/ingest/domain/datasets/yolo.py``) is the inverse.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from services.annotation.domain.errors import InvalidExport

# A keypoint name's words: camelCase, runs of letters (any script) or digits; separators do not count.
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^\W\d_]+")
# Words that name a side, and the other side's.
_SIDES = {"left": "right", "right": "left", "l": "r", "r": "l"}
# How many labels or annotations a refusal names.
SHOWN = 10


def _words(name: str) -> tuple[str, ...]:
    return tuple(word.casefold() for word in _WORDS.findall(name))


def flip_idx(names: list[str]) -> list[int]:
    """Ultralytics' ``flip_idx``: for each keypoint, the index of the one it becomes in a mirrored image.

    A name whose words hold a side (``left``/``right``, or ``l``/``r`` alone: ``left_eye``, ``leftEye``,
    ``hip_l``) is paired with the one name whose words are the same with the side swapped
    (``right_eye``); any other keypoint (``nose``), or one whose partner is missing or not the only one
    spelled so, maps to itself. The result is a permutation that undoes itself.
    """
    words = [_words(name) for name in names]
    index = {key: n for n, key in enumerate(words) if words.count(key) == 1}
    flips = []
    for n, key in enumerate(words):
        mirrored = tuple(_SIDES.get(word, word) for word in key)
        flips.append(index[mirrored] if mirrored != key and key in index and mirrored in index else n)
    return flips


def dataset_schema(objects: list[dict], labels: dict[str, dict]) -> list[str]:
    """The keypoint names every line of the export carries: the one schema the objects' labels have
    (:func:`schema_of`), their points checked against it (:func:`check_points`)."""
    names = schema_of({a["label_id"] for a in objects}, labels)
    check_points(objects, labels, len(names))
    return names


def schema_of(used: Iterable[str], labels: dict[str, dict]) -> list[str]:
    """The one keypoint schema of the labels ``used`` (those of the export's objects, known before any
    object is read).

    Refused (422) when the labels have different schemas (``keypoint_schemas_differ``, naming each label
    and its points), when none has a schema (``no_keypoint_schema``: K would be unknown), when a label
    without a schema has annotations with points (``keypoints_without_schema``: nothing says which of the
    K points they are), and when an annotation's points are not one per name of its label's schema
    (``keypoints_count``: made before the schema changed).
    """
    used = set(used)
    schemas = {tuple(labels[i]["keypoints"]) for i in used if labels[i].get("keypoints")}
    if len(schemas) > 1:
        named = sorted((labels[i]["name"], len(labels[i]["keypoints"])) for i in used if labels[i].get("keypoints"))
        raise InvalidExport(
            "keypoint_schemas_differ",
            f"A YOLO pose dataset has one kpt_shape, and these labels have different keypoint schemas: "
            f"{_listed(f'{name!r} ({count} points)' for name, count in named)}. Export them apart (with 'classes'), "
            "or give them one schema.",
            labels=[name for name, _ in named][:50],
        )
    if not schemas:
        exported = f"None of the labels exported ({_listed(sorted(repr(labels[i]['name']) for i in used))}) has" if used else (
            "The selection has no box or keypoints to export, so no label gives"
        )
        raise InvalidExport(
            "no_keypoint_schema",
            f"{exported} a keypoint schema, and a pose dataset's kpt_shape needs one: give the label its keypoint names "
            "(PATCH /v1/labels/{id} with 'keypoints'), or export boxes with 'yolo'.",
        )
    [names] = schemas
    return list(names)


def check_points(objects: list[dict], labels: dict[str, dict], count: int) -> None:
    """Refuse ``objects`` with points their label has no schema for, or not ``count`` of them (see :func:`schema_of`)."""
    unnamed = sorted({labels[a["label_id"]]["name"] for a in objects if a.get("keypoints") and not labels[a["label_id"]].get("keypoints")})
    if unnamed:
        raise InvalidExport(
            "keypoints_without_schema",
            f"Annotations of {_listed(map(repr, unnamed))} carry keypoints, but the label has no keypoint schema to say which "
            f"of the dataset's {count} points they are: give it the schema, or leave it out with 'classes'.",
            labels=unnamed[:50],
        )
    wrong = [(str(a.get("_id")), len(a["keypoints"])) for a in objects if a.get("keypoints") and len(a["keypoints"]) != count]
    if wrong:
        raise InvalidExport(
            "keypoints_count",
            f"{len(wrong)} annotation(s) have a number of points other than their label's {count} keypoints (made before "
            f"the schema changed): {_listed(f'{a} ({n} points)' for a, n in wrong)}; give them one point per name.",
            annotations=[a for a, _ in wrong[:50]],
        )


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    return ", ".join(items[:SHOWN]) + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def keypoint_values(points: list[list[float]] | None, count: int, width: int, height: int) -> str:
    """``px1 py1 v1 ... pxK pyK vK``: each labelled point normalised to [0, 1] (6 decimals, clamped, as a
    point on the image's edge may sit a float's breadth past it) with its visibility as COCO's 1 or 2;
    an unlabelled point, and every point of an object without any, ``0 0 0``."""
    values = []
    for x, y, v in points or [[0, 0, 0]] * count:
        if v > 0:
            values.append(f"{min(max(x / width, 0.0), 1.0):.6f} {min(max(y / height, 0.0), 1.0):.6f} {int(v)}")
        else:
            values.append("0 0 0")
    return " ".join(values)
