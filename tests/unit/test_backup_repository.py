"""The backup repository on its own: durable writes, the lock, which snapshots count as finished."""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing
from dataclasses import asdict

import pytest

from services.cli.snapshots.repository import FORMAT, OBJECTS, Manifest, ObjectEntry, Repository, RepositoryError, durable_write
from services.cli.snapshots.verify import prune


def manifest(snapshot_id: str, **overrides) -> Manifest:
    fields = dict(
        id=snapshot_id, created_at="2026-11-26T00:00:00+00:00", database="corpus", bucket="corpus", cluster_time=[1, 1],
        collections=[], objects=0, object_bytes=0, objects_sha256="", copied=0, copied_bytes=0, images=0,
    )
    return Manifest(**{**fields, **overrides})


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    target = tmp_path / "a" / "file"
    with pytest.raises(RuntimeError), durable_write(target) as handle:
        handle.write(b"half")
        raise RuntimeError("the disk went away")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with durable_write(target) as handle:
        handle.write(b"whole")
    assert target.read_bytes() == b"whole" and list(target.parent.iterdir()) == [target]


def test_blobs_are_stored_once_under_their_sha256(tmp_path):
    repo = Repository(tmp_path)
    data = b"the same bytes"
    first, second = repo.add_blob_bytes(data), repo.add_blob_bytes(data)
    assert first == second == hashlib.sha256(data).hexdigest()
    assert repo.blob_path(first).read_bytes() == data
    assert [sha for sha, _ in repo.blob_shas()] == [first]


def test_only_snapshots_with_a_manifest_are_listed_and_latest_is_the_newest(tmp_path):
    repo = Repository(tmp_path)
    with pytest.raises(RepositoryError, match="holds no finished snapshot"):
        repo.resolve(None)
    for snapshot_id in ("20261101T000000000000Z", "20261102T000000000000Z"):
        repo.write_manifest(manifest(snapshot_id))
    (repo.snapshot_dir("20261103T000000000000Z") / "mongo").mkdir(parents=True)  # died before its manifest
    partial_blob = repo.blob_path("ab" * 32).with_name(".half.123.tmp")
    partial_blob.parent.mkdir(parents=True)
    partial_blob.write_bytes(b"half")
    assert repo.snapshot_ids() == ["20261101T000000000000Z", "20261102T000000000000Z"]
    assert repo.resolve("latest") == repo.resolve(None) == "20261102T000000000000Z"
    with pytest.raises(RepositoryError, match="no finished snapshot '20261103T000000000000Z'"):
        repo.resolve("20261103T000000000000Z")
    assert [p.name for p in repo.unfinished()] == ["20261103T000000000000Z"]
    repo.remove_leftovers()
    assert repo.unfinished() == [] and not partial_blob.exists()
    assert repo.snapshot_ids() == ["20261101T000000000000Z", "20261102T000000000000Z"]


def test_a_manifest_of_another_format_is_refused(tmp_path):
    raw = asdict(manifest("x"))
    assert Manifest.parse(json.loads(json.dumps(raw))) == manifest("x")
    with pytest.raises(RepositoryError, match="not a snapshot this tool reads"):
        Manifest.parse({**raw, "format": "something-else/9"})
    assert raw["format"] == FORMAT


def _hold_lock(root: str, ready, release) -> None:
    with Repository(root).locked(exclusive=True):
        ready.set()
        release.wait(30)


def test_a_writer_excludes_every_other_user_of_the_repository(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        for exclusive in (True, False):
            with pytest.raises(RepositoryError, match="in use by another backup"), Repository(tmp_path).locked(exclusive=exclusive):
                pass
    finally:
        release.set()
        holder.join(30)
    with Repository(tmp_path).locked(exclusive=False), Repository(tmp_path).locked(exclusive=False):
        pass  # readers share it


def test_prune_keeps_the_newest_and_removes_what_only_older_ones_named(tmp_path):
    repo = Repository(tmp_path)
    shared, old_only = repo.add_blob_bytes(b"kept by both"), repo.add_blob_bytes(b"only the old one")
    for snapshot_id, shas in (("20261101T000000000000Z", [shared, old_only]), ("20261102T000000000000Z", [shared])):
        with durable_write(repo.snapshot_dir(snapshot_id) / OBJECTS) as handle, gzip.GzipFile(fileobj=handle, mode="wb") as packed:
            for n, sha in enumerate(shas):
                packed.write(ObjectEntry(f"k{n}", sha, 1, "e", "x").line())
        repo.write_manifest(manifest(snapshot_id))
    report = prune(repo, keep=1)
    assert report.kept == ["20261102T000000000000Z"] and report.removed == ["20261101T000000000000Z"]
    assert report.removed_blobs == 1 and report.freed_bytes == len(b"only the old one")
    assert repo.has_blob(shared) and not repo.has_blob(old_only)
