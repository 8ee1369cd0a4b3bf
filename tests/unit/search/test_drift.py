from services.search.domain.drift import compare


def test_drift_names_every_kind_of_difference():
    drift = compare({"a": 5, "b": 5, "c": 5, "d": 5}, {"a": 5, "b": 4, "c": 6, "x": 1})
    assert drift.missing == ["d"] and drift.stale == ["b"] and drift.ahead == ["c"] and drift.extra == ["x"]
    report = drift.report()
    assert report["drift"] == 4 and report["expected"] == 4 and report["indexed"] == 4
    assert report["samples"]["missing"] == ["d"]


def test_no_drift():
    assert compare({"a": 1}, {"a": 1}).report()["drift"] == 0
