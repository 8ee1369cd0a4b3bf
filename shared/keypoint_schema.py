"""A label's keypoint schema: its keypoints' names, in order, and the skeleton's edges between them.

COCO's categories carry one (``keypoints``, and ``skeleton`` as pairs of keypoint numbers counted from
1), so a dataset import brings it with its labels, the label API sets it, and the COCO export writes it
back. An annotation of a label with a schema has one ``[x, y, visibility]`` per name. The rule is checked
here, for both services: a contract, like the events that carry it.
"""

from __future__ import annotations

from typing import Any

# (names, skeleton): what a label stores, as :func:`checked_schema` returns it.
KeypointSchema = tuple[list[str], list[list[int]]]

MAX_KEYPOINTS = 256
MAX_NAME_CHARS = 200


def checked_schema(names: Any, skeleton: Any) -> KeypointSchema:
    """``(names, skeleton)`` as stored; ValueError saying what is wrong. No skeleton is ``[]``."""
    if not isinstance(names, list) or not names or len(names) > MAX_KEYPOINTS:
        raise ValueError(f"'keypoints' must be a list of 1 to {MAX_KEYPOINTS} keypoint names")
    if not all(isinstance(n, str) and n.strip() and len(n) <= MAX_NAME_CHARS for n in names):
        raise ValueError(f"every keypoint name must be text with something in it, at most {MAX_NAME_CHARS} characters")
    if len(set(names)) != len(names):
        raise ValueError(f"keypoint names must be distinct; repeated: {sorted({n for n in names if names.count(n) > 1})[:5]}")
    edges = [] if skeleton is None else skeleton
    if not isinstance(edges, list):
        raise ValueError("'skeleton' must be a list of [a, b] pairs of keypoint numbers (from 1)")
    seen: set[frozenset[int]] = set()
    for edge in edges:
        if not (
            isinstance(edge, list | tuple) and len(edge) == 2
            and all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= len(names) for k in edge)
        ):  # fmt: skip
            raise ValueError(f"skeleton edge {edge!r:.60} is not a pair of keypoint numbers from 1 to {len(names)}")
        if edge[0] == edge[1] or frozenset(edge) in seen:
            raise ValueError(f"skeleton edge {list(edge)} joins a keypoint to itself or repeats an edge")
        seen.add(frozenset(edge))
    return list(names), [list(edge) for edge in edges]
