"""Which paths ``corpus ingest files`` reads, and what it says of the ones it cannot."""

from __future__ import annotations

import os

import pytest
import typer

from services.cli.ingest import _files


def test_folders_are_walked_for_images_and_files_are_taken_as_given(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "cat.JPG").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_bytes(b"x")
    given = tmp_path / "scan.bin"
    given.write_bytes(b"x")
    assert _files([tmp_path / "a", given]) == [tmp_path / "a" / "b" / "cat.JPG", given]


def test_a_pipe_is_named_for_what_it_is_not_called_missing(tmp_path):
    fifo = tmp_path / "incoming"
    os.mkfifo(fifo)
    with pytest.raises(typer.BadParameter, match="neither a file nor a folder"):
        _files([fifo])
    with pytest.raises(typer.BadParameter, match="does not exist"):
        _files([tmp_path / "nothing-here.jpg"])
