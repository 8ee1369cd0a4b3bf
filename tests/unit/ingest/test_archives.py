"""The pure parts of archive imports: names, the path inside an archive, where a dataset starts."""

import pytest

from services.ingest.domain.archives import ArchiveRefused, dataset_name, dataset_root, inner_path


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("coco128.tar.gz", "coco128"), ("VOC2007.TAR", "VOC2007"), ("pets.zip", "pets"), ("C:\\data\\imagenette.tgz", "imagenette"), ("notes", "notes")],
)
def test_the_default_dataset_name_is_the_file_name_without_its_archive_suffix(filename, expected):
    assert dataset_name(filename) == expected


def test_a_path_inside_the_archive_must_stay_inside_it():
    assert inner_path(None) is None and inner_path("  ") is None
    assert inner_path("coco128/annotations/instances.json") == "coco128/annotations/instances.json"
    assert inner_path(".") == "."
    for bad in ("../etc", "/etc/passwd", "a/../../b"):
        with pytest.raises(ArchiveRefused) as refused:
            inner_path(bad)
        assert refused.value.reason == "unsafe_path"


def test_a_single_top_folder_is_the_dataset_root_unless_a_path_is_given(tmp_path):
    (tmp_path / "coco128" / "images").mkdir(parents=True)
    (tmp_path / "__MACOSX").mkdir()  # what macOS's zip adds beside it
    assert dataset_root(tmp_path, None) == tmp_path / "coco128"
    assert dataset_root(tmp_path, ".") == tmp_path
    assert dataset_root(tmp_path, "coco128/images") == tmp_path / "coco128" / "images"
    (tmp_path / "README.txt").write_text("two entries now")
    assert dataset_root(tmp_path, None) == tmp_path
