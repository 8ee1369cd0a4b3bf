"""A hypothesis state machine drives create / update / delete / revert / as_of / drain through the
service layer against the real MongoDB, and checks every answer against a simple in-memory model.

Writes leave their changes pending inside the annotations; the ``drain`` rule moves them into
history and the summary at random points, so history, as_of and revert are checked both while
changes wait and after they moved, and the summary after every drain."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from services.annotation import service
from services.annotation.adapters.store import PENDING_COUNT, ensure_indexes
from services.annotation.domain.errors import NotFound, VersionConflict
from services.annotation.domain.model import AnnotationPatch
from shared.auth import Principal, Role
from shared.clients.mongo import database, mongo_client
from shared.readmodels import ANNOTATION_SUMMARIES
from shared.settings import CorpusSettings
from tests.conftest import isolated_names
from tests.integration.annotation.conftest import add_image, service_layer

pytestmark = pytest.mark.integration

ADMIN = Principal("admin", "admin", Role.ADMIN)
boxes = st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(1, 40), st.integers(1, 40)).map(list)
labels = st.sampled_from(["Sm_Cat", "sm dog", "SM-BIRD"])


class AnnotationHistory(RuleBasedStateMachine):
    """Model: per annotation, its versions (state after each); and a timeline of the image's live set."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        settings_ = CorpusSettings(**isolated_names())
        self.client = mongo_client(settings_)
        db = database(self.client, settings_)
        self.run(ensure_indexes(db))
        self.deps = service_layer(db)
        self.image_id = self.run(add_image(db, 100, 100))
        # id → [state at v1, v2, ...], in creation order: rules draw annotations by position in it. Ids are
        # random, so drawing from them sorted would make the same draws pick other annotations when hypothesis
        # replays an example, and it stops the run as a FlakyStrategyDefinition.
        self.versions: dict[str, list[dict]] = {}
        self.timeline: list[tuple] = []  # (time, {id: state}) after each write

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.close())
        self.loop.close()

    def _state(self, doc: dict) -> dict:
        return {"bbox": doc["bbox"], "label_id": doc["label_id"], "deleted": doc["deleted"], "version": doc["version"]}

    def _record(self, doc: dict) -> None:
        self.versions.setdefault(doc["_id"], []).append(self._state(doc))
        live = {i: v[-1] for i, v in self.versions.items() if not v[-1]["deleted"]}
        self.timeline.append((doc["updated_at"], copy.deepcopy(live)))

    def _label_id(self, name: str) -> str:
        return self.run(self.deps.labels.ensure(name, "admin"))[0]["_id"]

    @initialize(box=boxes, label=labels)
    def first(self, box, label):
        self.create(box, label)

    @rule(box=boxes, label=labels)
    def create(self, box, label):
        item = {"image_id": self.image_id, "type": "bbox", "label": label, "bbox": box}
        [result] = self.run(service.create_many(self.deps, "admin", [item]))
        assert result["status"] == 201
        doc = self.run(self.deps.annotations.get(result["id"]))
        assert doc["bbox"] == box and doc["label_id"] == self._label_id(label) and doc["version"] == 1
        self._record(doc)

    @rule(data=st.data(), box=boxes, label=labels, stale=st.booleans())
    def update(self, data, box, label, stale):
        annotation_id = data.draw(st.sampled_from(list(self.versions)))
        current = self.versions[annotation_id][-1]
        expected = current["version"] - 1 if stale and current["version"] > 1 else current["version"]
        patch = AnnotationPatch(bbox=box, label=label)
        try:
            doc = self.run(service.update(self.deps, ADMIN, annotation_id, patch, expected))
        except VersionConflict:
            assert expected != current["version"]
            return
        except NotFound:
            assert current["deleted"]
            return
        assert expected == current["version"] and not current["deleted"]
        assert doc["version"] == current["version"] + 1 and doc["bbox"] == box
        self._record(doc)

    @rule(data=st.data())
    def delete(self, data):
        annotation_id = data.draw(st.sampled_from(list(self.versions)))
        current = self.versions[annotation_id][-1]
        try:
            doc = self.run(service.delete(self.deps, ADMIN, annotation_id, current["version"]))
        except NotFound:
            assert current["deleted"]
            return
        assert doc["deleted"] and doc["version"] == current["version"] + 1
        self._record(doc)

    @rule(data=st.data())
    def revert(self, data):
        annotation_id = data.draw(st.sampled_from(list(self.versions)))
        history = self.versions[annotation_id]
        target = data.draw(st.integers(1, len(history)))
        doc = self.run(service.revert(self.deps, ADMIN, annotation_id, target, history[-1]["version"]))
        old = history[target - 1]
        assert (doc["bbox"], doc["label_id"], doc["deleted"]) == (old["bbox"], old["label_id"], old["deleted"])
        assert doc["version"] == len(history) + 1
        self._record(doc)

    @precondition(lambda self: self.timeline)
    @rule(data=st.data())
    def as_of(self, data):
        when, expected = data.draw(st.sampled_from(self.timeline))
        expected = next(snapshot for t, snapshot in reversed(self.timeline) if t <= when)
        docs = self.run(self.deps.annotations.as_of(self.image_id, when))
        assert {d["_id"]: self._state(d) for d in docs} == expected

    @invariant()
    def current_state_matches(self):
        docs = self.run(self.deps.annotations.for_image(self.image_id, "", 1000))
        live = {i: v[-1] for i, v in self.versions.items() if not v[-1]["deleted"]}
        assert {d["_id"]: self._state(d) for d in docs} == live

    @rule()
    def drain(self):
        """Move every pending change; then the summary counts exactly the live annotations."""
        self.run(self.deps.pending.drain_all())
        assert self.run(self.deps.annotations.annotations.count_documents({PENDING_COUNT: {"$gt": 0}})) == 0
        live = [v[-1] for v in self.versions.values() if not v[-1]["deleted"]]
        names = self.run(self.deps.labels.names_of({s["label_id"] for s in live}))
        summary = self.run(self.deps.annotations.db[ANNOTATION_SUMMARIES].find_one({"_id": self.image_id})) or {}
        assert summary.get("labels", {}) == dict(Counter(names[s["label_id"]] for s in live))
        assert summary.get("count", 0) == len(live) and summary.get("types", {}) == ({"bbox": len(live)} if live else {})
        stored = self.run(self.deps.annotations.history_docs.count_documents({"image_id": self.image_id}))
        assert stored == sum(len(v) for v in self.versions.values())

    @invariant()
    def history_has_every_version(self):
        for annotation_id, versions in self.versions.items():
            entries = self.run(self.deps.annotations.history(annotation_id, 0, 1000))
            assert [e["version"] for e in entries] == list(range(1, len(versions) + 1))
            assert entries[-1]["state"]["bbox"] == versions[-1]["bbox"]


def test_history_state_machine():
    run_state_machine_as_test(
        AnnotationHistory,
        settings=settings(max_examples=12, stateful_step_count=12, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )  # fmt: skip


