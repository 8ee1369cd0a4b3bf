"""Annotation use cases: create (one, bulk, import), update, delete, revert.

Views and the import handler call these; these call the domain rules and the
repositories. Every write is conditional on the version the caller saw.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from collections.abc import Iterable
from typing import Any, Protocol

from services.annotation.adapters.annotations import AnnotationRepository, history_entry
from services.annotation.adapters.label_changes import LabelRepository
from services.annotation.adapters.workers import WorkersLost
from services.annotation.domain.errors import InvalidAnnotation, NotAllowed, NotFound, VersionConflict
from services.annotation.domain.fields import check_attributes
from services.annotation.domain.geometry import GEOMETRY_FIELDS, SHAPED, TYPES, check_all, check_keypoint_count
from services.annotation.domain.model import GEOMETRY_KEYS, AnnotationPatch, changes_between, now_ms, state_of
from shared.auth import Principal, Role
from shared.auth.rules import may_delete_annotation
from shared.events import AnnotationCreated, AnnotationDeleted, AnnotationUpdated, Envelope

CHUNK = 500  # annotations per transaction in bulk paths
# Annotations per transaction in an import. An import event carries up to hundreds of polygons, and several
# are handled at once: smaller transactions stay short (and are cheap to re-run), and the event loop encodes
# one small batch at a time, answering requests in between.
IMPORT_CHUNK = 100
# Geometries checked on the event loop: an interactive edit's few boxes, points or small polygons. More, a
# mask, or polygons of many vertices (rasterised by pycocotools) go to the worker pool: 730 polygons are some
# 60 ms of Python (checked_in_pool).
INLINE_GEOMETRIES = 32
INLINE_POLYGON_NUMBERS = 2_000  # coordinates across a request's polygons checked on the loop


class Nudges(Protocol):
    """Where the service says that it left work for the background (the drain process, or a drain
    in this process for tests and tools)."""

    def nudge(self, annotation_ids: Iterable[str]) -> None: ...

    def nudge_relay(self) -> None: ...


@dataclass(frozen=True)
class AnnotationDeps:
    annotations: AnnotationRepository
    labels: LabelRepository
    pending: Nudges
    cpu: Executor
    producer: str


def checked_in_pool(items: list[tuple[str, dict, int, int]]) -> bool:
    """Masks (RLE arithmetic over whole images), large batches (an import event's hundreds of polygons) and
    polygons of many vertices would hold up every request on the event loop: they are checked in the worker
    pool. A few small polygons stay inline: the pool's round trip (~0.5 ms) would cost an interactive
    create more than the check itself (~15 µs)."""
    if len(items) > INLINE_GEOMETRIES or any(kind == "mask" for kind, *_ in items):
        return True
    numbers = sum(len(ring) for kind, geometry, *_ in items if kind == "polygon" for ring in _rings(geometry.get("polygon")))
    return numbers > INLINE_POLYGON_NUMBERS


def _rings(polygon: Any) -> list:
    return [ring for ring in polygon if isinstance(ring, list)] if isinstance(polygon, list) else []


async def check_geometries(deps: AnnotationDeps, items: list[tuple[str, dict, int, int]]) -> list[tuple[str, Any, str]]:
    if not checked_in_pool(items):
        return check_all(items)
    try:
        return await asyncio.get_running_loop().run_in_executor(deps.cpu, check_all, items)
    except BrokenProcessPool as exc:  # a worker died under this batch; the pool replaces itself for the next
        raise WorkersLost(f"a geometry worker died: {exc}") from exc


def _geometry_of(item: dict[str, Any]) -> dict[str, Any]:
    """The fields the geometry check reads: less to send to the worker pool than the whole item."""
    return {k: item.get(k) for k in GEOMETRY_FIELDS}


def _event(cls: type, doc: dict, label: str, **extra: Any) -> AnnotationCreated:
    return cls(
        annotation_id=doc["_id"], image_id=doc["image_id"], version=doc["version"], type=doc["type"], label=label,
        changed_by=doc["updated_by"], changed_at=doc["updated_at"], **extra,
    )  # fmt: skip


async def create_many(
    deps: AnnotationDeps, actor: str, items: list[dict[str, Any]], chunk: int = CHUNK, seed: str | None = None
) -> list[dict[str, Any]]:
    """Create annotations, ``chunk`` per transaction; one result per item: ``{"index", "status": 201, "id",
    "version", "doc", "label"}`` or ``{"index", "status": 422, "reason", "detail"}``.

    With ``seed`` (a request's Idempotency-Key: :func:`shared.web.idempotency.request_seed`) item ``i``'s id
    is derived from it, and an item whose annotation a previous run of the request stored is answered with
    that annotation, not stored twice. Random ids let a run repeated after a MongoDB outage (the work
    committed, its answer not recorded) store every annotation of the request a second time."""
    results: list[dict[str, Any]] = [{"index": i} for i in range(len(items))]
    images, known = await asyncio.gather(
        deps.annotations.images([item["image_id"] for item in items]),
        deps.labels.resolve_many([i["label"] for i in items]),
    )
    labels: dict[str, dict | InvalidAnnotation] = dict(known)
    for item in items:
        if item["label"] not in labels:
            try:
                labels[item["label"]] = (await deps.labels.ensure(item["label"], actor))[0]
            except InvalidAnnotation as exc:
                labels[item["label"]] = exc
    pending: list[tuple[int, tuple[str, dict, int, int]]] = []
    for i, item in enumerate(items):
        image, label, refused = images.get(item["image_id"]), labels[item["label"]], _refused_attributes(item)
        if image is None:
            results[i].update(status=422, reason="unknown_image", detail=f"No image has id {item['image_id']!r}.")
        elif isinstance(label, InvalidAnnotation):
            results[i].update(status=422, reason=label.reason, detail=label.detail)
        elif refused is not None:
            results[i].update(status=422, reason=refused.reason, detail=refused.detail)
        else:
            pending.append((i, (item["type"], _geometry_of(item), image["height"], image["width"])))
    checked = await check_geometries(deps, [geometry for _, geometry in pending])
    outcomes = [(i, outcome) for (i, _), outcome in zip(pending, checked, strict=True)]
    now = now_ms()
    for start in range(0, len(outcomes), chunk):
        # Built a chunk at a time: between one chunk's transaction and the next, the event loop answers requests.
        docs, events = _new_documents(deps, actor, now, items, labels, outcomes[start : start + chunk], results, seed)
        if seed is not None:
            docs, events = await _not_stored_before(deps, docs, events, results)
        await _store(deps, docs, events)
    return results


def _annotation_id(seed: str | None, index: int) -> str:
    return hashlib.sha256(f"{seed}:{index}".encode()).hexdigest()[:32] if seed is not None else uuid.uuid4().hex


async def _not_stored_before(
    deps: AnnotationDeps, docs: list[dict[str, Any]], events: list[Envelope], results: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Envelope]]:
    """The documents an earlier run of the same request did not store; the items it did are answered with
    the annotation it stored (as it is now)."""
    stored = {doc["_id"]: doc for doc in await deps.annotations.get_many([doc["_id"] for doc in docs])}
    if not stored:
        return docs, events
    names = await deps.labels.names_of({doc["label_id"] for doc in stored.values()})
    for result in results:
        if (doc := stored.get(result.get("id", ""))) is not None:
            result.update(version=doc["version"], doc=doc, label=names.get(doc["label_id"], ""))
    kept = [n for n, doc in enumerate(docs) if doc["_id"] not in stored]
    return [docs[n] for n in kept], [events[n] for n in kept]


def _new_documents(
    deps: AnnotationDeps, actor: str, now: datetime, items: list[dict[str, Any]], labels: dict[str, Any],
    outcomes: list[tuple[int, tuple[str, Any, str]]], results: list[dict[str, Any]], seed: str | None = None,
) -> tuple[list[dict[str, Any]], list[Envelope]]:
    """The documents and events of the items whose geometry passed; each item's result is filled in."""
    docs, events = [], []
    for i, (outcome, fields, detail) in outcomes:
        if outcome == "error":
            results[i].update(status=422, reason=fields, detail=detail)
            continue
        item, label = items[i], labels[items[i]["label"]]
        try:
            check_keypoint_count(fields.get("keypoints"), label)
        except InvalidAnnotation as exc:
            results[i].update(status=422, reason=exc.reason, detail=exc.detail)
            continue
        doc = {
            "_id": _annotation_id(seed, i), "image_id": item["image_id"], "type": item["type"], "label_id": label["_id"],
            **dict.fromkeys(GEOMETRY_KEYS), **fields, "score": item.get("score"),
            "attributes": item.get("attributes") or {}, "dataset": item.get("dataset"),
            "source_id": item.get("source_id"), "deleted": False, "version": 1,
            "created_at": now, "created_by": actor, "updated_at": now, "updated_by": actor,
        }  # fmt: skip
        docs.append(doc)
        events.append(Envelope.wrap(_event(AnnotationCreated, doc, label["name"]), producer=deps.producer))
        results[i].update(status=201, id=doc["_id"], version=1, doc=doc, label=label["name"])
    return docs, events


async def _store(deps: AnnotationDeps, docs: list[dict[str, Any]], events: list[Envelope]) -> None:
    if await deps.annotations.add(docs, events):
        deps.pending.nudge(doc["_id"] for doc in docs)  # the drain also moves them off a label merged meanwhile
    elif docs:
        await deps.labels.settle(docs, docs[0]["created_by"])  # a label merged while the batch was prepared
        deps.pending.nudge_relay()


def _refused_attributes(item: dict[str, Any]) -> InvalidAnnotation | None:
    try:
        check_attributes(item.get("attributes") or {})
    except InvalidAnnotation as exc:
        return exc
    return None


class Labelled(dict):
    """An annotation document with its label's current name beside it (for answers; never stored)."""

    label: str = ""


def labelled(doc: dict[str, Any], name: str) -> Labelled:
    out = Labelled(doc)
    out.label = name
    return out


async def current(deps: AnnotationDeps, annotation_id: str, expected: int | None) -> Labelled:
    found = await deps.annotations.get_labelled(annotation_id)
    if found is None:
        raise NotFound(f"No annotation has id {annotation_id!r}.")
    doc, name = found
    if expected is not None and doc["version"] != expected:
        raise VersionConflict(
            f"You sent If-Match {expected}, but the annotation is at version {doc['version']}: "
            "merge your change into the current state (in this body) and send it again with its version."
        )
    return labelled(doc, name)


async def _write(deps: AnnotationDeps, before: Labelled, state: dict, actor: str, action: str, **extra: Any) -> Labelled:
    """Store ``state`` as the next version of ``before``, with history and event, or raise VersionConflict."""
    stamp = max(now_ms(), before["updated_at"])  # history times never go backwards
    doc = {**before, **state, "version": before["version"] + 1, "updated_at": stamp, "updated_by": actor}
    names = {before["label_id"]: before.label}
    if doc["label_id"] not in names:
        names.update(await deps.labels.names_of({doc["label_id"]}))
    label, previous = names[doc["label_id"]], names[before["label_id"]]
    if doc["deleted"]:
        event = _event(AnnotationDeleted, doc, label)
    else:
        kind = AnnotationCreated if before["deleted"] else AnnotationUpdated
        event = _event(kind, doc, label, **({"previous_label": previous} if kind is AnnotationUpdated else {}))
    entry = history_entry(doc, action, changes_between(state_of(before), state_of(doc)), extra.get("reverted_to"))
    await deps.annotations.write_version(doc, entry, Envelope.wrap(event, producer=deps.producer))
    deps.pending.nudge([doc["_id"]])
    return labelled(doc, label)


async def update(deps: AnnotationDeps, who: Principal, annotation_id: str, patch: AnnotationPatch, expected: int) -> Labelled:
    before = await current(deps, annotation_id, expected)
    if before["deleted"]:
        raise NotFound(f"Annotation {annotation_id!r} is deleted; revert it to a version to bring it back.")
    given = patch.model_dump(exclude_unset=True)
    _refuse_nulls(given)
    if "attributes" in given:
        check_attributes(given["attributes"])
    state = {k: v for k, v in given.items() if k not in ("label", *GEOMETRY_FIELDS)}
    label = None
    if "label" in given:
        label = (await deps.labels.ensure(given["label"], who.user_id))[0]
        state["label_id"] = label["_id"]
    if "type" in given or any(k in given for k in GEOMETRY_FIELDS):
        images = await deps.annotations.images([before["image_id"]])
        image = images.get(before["image_id"])
        if image is None:
            raise InvalidAnnotation("unknown_image", f"The image {before['image_id']!r} no longer exists.")
        kind = given.get("type", before["type"])
        kept = [k for k in GEOMETRY_FIELDS if not (k == "bbox" and kind in SHAPED)]  # a shape's box is derived anew
        geometry = {k: before.get(k) for k in kept} | {k: given[k] for k in GEOMETRY_FIELDS if k in given}
        [(outcome, fields, detail)] = await check_geometries(deps, [(kind, geometry, image["height"], image["width"])])
        if outcome == "error":
            raise InvalidAnnotation(fields, detail)
        state.update({**dict.fromkeys(GEOMETRY_KEYS), **fields})
    keypoints = state.get("keypoints", before.get("keypoints"))
    if keypoints and ("label_id" in state or "keypoints" in state):
        check_keypoint_count(keypoints, label or await deps.labels.get(before["label_id"]))
    return await _write(deps, before, state, who.user_id, "updated")


def _refuse_nulls(given: dict[str, Any]) -> None:
    """``null`` clears a score or a geometry field (the geometry check then says whether the type still
    has what it needs), but an annotation always has a type, a label and an attributes object."""
    if "type" in given and given["type"] is None:
        raise InvalidAnnotation("unknown_type", f"'type' cannot be null; use one of {', '.join(TYPES)}.")
    if "label" in given and given["label"] is None:
        raise InvalidAnnotation("label_name", "'label' cannot be null; every annotation has a label.")
    if "attributes" in given and given["attributes"] is None:
        raise InvalidAnnotation("attributes_shape", "'attributes' must be an object (send {} for none), not null.")


async def delete(deps: AnnotationDeps, who: Principal, annotation_id: str, expected: int) -> Labelled:
    before = await current(deps, annotation_id, expected)
    if before["deleted"]:
        raise NotFound(f"Annotation {annotation_id!r} is already deleted.")
    if not may_delete_annotation(who.role, who.user_id, before["created_by"]):
        raise NotAllowed("Annotators delete only the annotations they created; ask an admin.")
    return await _write(deps, before, {"deleted": True}, who.user_id, "deleted")


async def revert(deps: AnnotationDeps, who: Principal, annotation_id: str, to_version: int, expected: int) -> Labelled:
    """A new version whose state equals version ``to_version`` (merged labels followed to the survivor)."""
    before = await current(deps, annotation_id, expected)
    if who.role is not Role.ADMIN and before["created_by"] != who.user_id and before["deleted"]:
        raise NotAllowed("Only an admin or the annotation's creator may bring back a deleted annotation.")
    entry = await deps.annotations.version(annotation_id, to_version)
    if entry is None:
        raise NotFound(f"Annotation {annotation_id!r} has no version {to_version}.")
    state = dict(entry["state"])
    if state["deleted"] and not before["deleted"] and not may_delete_annotation(who.role, who.user_id, before["created_by"]):
        raise NotAllowed("Reverting to a deleted version deletes the annotation: annotators may do that only to their own.")
    state["label_id"] = (await deps.labels.live(state["label_id"]))["_id"]
    return await _write(deps, before, state, who.user_id, "reverted", reverted_to=to_version)
