"""Free-form values (attributes, label names, external ids) and the geometry edge cases that used to be 500s."""

from __future__ import annotations

import pytest

from services.annotation.adapters.labels import label_name
from services.annotation.domain.errors import InvalidAnnotation
from services.annotation.domain.fields import check_attributes, check_external_ids
from services.annotation.domain.geometry import check_geometry
from services.annotation.domain.rle import counts_from_string


def nested(levels: int, inner: dict | list | None = None) -> dict | list:
    """``levels`` objects (or lists, with ``inner=[]``) one inside the other."""
    value: dict | list = {} if inner is None else inner
    for _ in range(levels - 1):
        value = {"a": value} if inner is None else [value]
    return value


def reason_of(call, *args) -> str:
    with pytest.raises(InvalidAnnotation) as caught:
        call(*args)
    return caught.value.reason


def test_attributes_are_a_shallow_small_object_that_bson_holds():
    assert check_attributes(nested(20)) == nested(20)
    assert check_attributes({"n": 2**63 - 1, "x": [1.5, None, True, "é"]})
    assert reason_of(check_attributes, nested(21)) == "attributes_too_deep"
    assert reason_of(check_attributes, nested(190)) == "attributes_too_deep"
    assert reason_of(check_attributes, {"a": nested(20, [])}) == "attributes_too_deep"  # lists count too
    assert reason_of(check_attributes, {"x": "y" * 70_000}) == "attributes_too_large"
    assert reason_of(check_attributes, None) == "attributes_shape"
    assert reason_of(check_attributes, {"n": 2**63}) == "attributes_shape"
    assert reason_of(check_attributes, {"n": float("nan")}) == "attributes_shape"
    assert reason_of(check_attributes, {"a\x00b": 1}) == "attributes_shape"


def test_label_names_are_bounded_and_printable():
    assert label_name("x" * 200) == "x" * 200
    assert label_name("  Traffic_Light ") == "traffic light"
    assert reason_of(label_name, "x" * 201) == "label_name_too_long"
    assert reason_of(label_name, "ﬀ" * 150) == "label_name_too_long"  # NFKC: 'ﬀ' is 'ff', 300 characters
    assert label_name("probe\u0001ctl") == "probectl"  # control characters are dropped by the naming rule
    assert reason_of(label_name, "probe\udcffctl") == "label_name_characters"  # a lone surrogate has no UTF-8
    assert reason_of(label_name, None) == "label_name"
    assert reason_of(label_name, " _- ") == "label_name"


@pytest.mark.parametrize("ids", [{"a.b": "1"}, {"": "1"}, {"$x": "1"}, {"a\x00": "1"}, {"s" * 101: "1"}, {"coco": "1" * 201}, {"coco": 1}])
def test_external_ids_refuse_keys_mongodb_reads_as_paths(ids):
    assert reason_of(check_external_ids, ids) == "external_ids"


def test_external_ids_accept_ordinary_schemes():
    assert check_external_ids({"coco": "18", "wordnet": "n02084071", "open-images": "/m/01g317"})


def test_a_huge_integer_is_not_a_number_we_keep():
    assert reason_of(check_geometry, "bbox", {"bbox": [1, 1, int("9" * 400), 3]}, 100, 200) == "not_numbers"
    assert reason_of(check_geometry, "keypoints", {"keypoints": [[10**400, 1, 2]]}, 100, 200) == "not_numbers"
    assert reason_of(check_geometry, "polygon", {"polygon": [[0, 0, 10**400, 0, 5, 5]]}, 100, 200) == "not_numbers"


def test_rle_counts_refuse_non_ascii_instead_of_replacing_it():
    with pytest.raises(ValueError, match="'é' is not in the RLE alphabet"):
        counts_from_string("0é0")
    assert reason_of(check_geometry, "mask", {"rle": {"size": [100, 200], "counts": "é"}}, 100, 200) == "rle_counts"


def test_a_shape_s_bbox_must_be_its_bounds_within_a_pixel():
    ring = [[0, 0, 10, 0, 10, 10]]
    assert check_geometry("polygon", {"polygon": ring}, 100, 200)["bbox"] == [0, 0, 10, 10]
    # COCO rounds boxes (and its crowd boxes are a pixel narrower): within a pixel, the given box is kept.
    assert check_geometry("polygon", {"polygon": ring, "bbox": [0, 0, 9, 9.5]}, 100, 200)["bbox"] == [0, 0, 9, 9.5]
    assert reason_of(check_geometry, "polygon", {"polygon": ring, "bbox": [100, 100, 50, 50]}, 200, 200) == "bbox_mismatch"
    rle = {"size": [100, 200], "counts": [0, 100 * 200]}
    assert check_geometry("mask", {"rle": rle}, 100, 200)["bbox"] == [0, 0, 200, 100]
    assert reason_of(check_geometry, "mask", {"rle": rle, "bbox": [0, 0, 20, 10]}, 100, 200) == "bbox_mismatch"


def test_a_dataset_name_becomes_a_scheme_mongodb_can_key_on():
    from services.annotation.domain.fields import scheme_for

    assert scheme_for("coco128") == "coco128"
    assert scheme_for("coco.2017") == "coco_2017" and scheme_for("$weird.name") == "weird_name"
    assert scheme_for("...") == "___" and scheme_for("$") is None and scheme_for("bad\x01name") is None
    assert len(scheme_for("d" * 500)) == 100
