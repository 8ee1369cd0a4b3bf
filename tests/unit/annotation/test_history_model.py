"""The history diff: exactly the fields that changed, with both values."""

from __future__ import annotations

from services.annotation.domain.model import changes_between, state_of


def test_changes_list_only_differing_fields():
    before = {"_id": "a", "type": "bbox", "label_id": "l1", "bbox": [1, 2, 3, 4], "area": 12, "deleted": False, "version": 1}
    after = {**before, "bbox": [1, 2, 3, 5], "area": 15, "version": 2}
    assert changes_between(state_of(before), state_of(after)) == {
        "bbox": {"from": [1, 2, 3, 4], "to": [1, 2, 3, 5]},
        "area": {"from": 12, "to": 15},
    }


def test_state_leaves_out_bookkeeping():
    state = state_of({"_id": "a", "version": 3, "updated_by": "u", "label_id": "l"})
    assert "version" not in state and "_id" not in state and state["label_id"] == "l"
