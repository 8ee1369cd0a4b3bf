"""The backup repository on its own: durable writes, the lock, which snapshots count as finished."""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing
from dataclasses import asdict

import pytest

from services.cli.snapshots.repository import FORMAT, OBJECTS, CollectionEntry, Manifest, ObjectEntry, Repository, RepositoryError, durable_write
from services.cli.snapshots.verify import prune


def manifest(snapshot_id: str, **overrides) -> Manifest:
    fields = dict(
        id=snapshot_id, created_at="2026-11-26T00:00:00+00:00", database="corpus", bucket="corpus", cluster_time=[1, 1],
        collections=[], objects=0, object_bytes=0, objects_sha256="", copied=0, copied_bytes=0, images=0,
    )
    return Manifest(**{**fields, **overrides})


def _snapshot(repo: Repository, snapshot_id: str, shas: list[str]) -> None:
    """A finished snapshot whose listing names ``shas`` (and whose manifest records the listing's SHA-256)."""
    listing = repo.snapshot_dir(snapshot_id) / OBJECTS
    with durable_write(listing) as handle, gzip.GzipFile(fileobj=handle, mode="wb") as packed:
        for n, sha in enumerate(shas):
            packed.write(ObjectEntry(f"k{n}", sha, 1, "e", "x").line())
    repo.write_manifest(manifest(snapshot_id, objects=len(shas), objects_sha256=hashlib.sha256(listing.read_bytes()).hexdigest()))


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
    with Repository(root).locked(exclusive=True, create=True):
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
    _snapshot(repo, "20261101T000000000000Z", [shared, old_only])
    _snapshot(repo, "20261102T000000000000Z", [shared])
    report = prune(repo, keep=1)
    assert report.kept == ["20261102T000000000000Z"] and report.removed == ["20261101T000000000000Z"]
    assert report.removed_blobs == 1 and report.freed_bytes == len(b"only the old one")
    assert repo.has_blob(shared) and not repo.has_blob(old_only)


def test_a_blob_of_the_wrong_size_is_stored_again(tmp_path):
    repo = Repository(tmp_path)
    data = b"x" * 5000
    sha = repo.add_blob_bytes(data)
    with repo.blob_path(sha).open("r+b") as handle:
        handle.truncate(1000)  # cut short (a full disk, a copy that stopped)
    assert repo.has_blob(sha) and not repo.has_blob_of_size(sha, len(data))
    assert repo.add_blob_bytes(data) == sha
    assert repo.blob_path(sha).read_bytes() == data and repo.has_blob_of_size(sha, len(data))
    download = tmp_path / "download"
    download.write_bytes(data)
    repo.blob_path(sha).write_bytes(b"short")
    repo.add_blob_file(download, sha)
    assert repo.blob_path(sha).read_bytes() == data and not download.exists()


def test_a_manifest_or_listing_that_does_not_parse_is_a_repository_error_naming_the_file(tmp_path):
    repo = Repository(tmp_path)
    _snapshot(repo, "20261101T000000000000Z", [repo.add_blob_bytes(b"a")])
    path = repo.snapshot_dir("20261101T000000000000Z") / "manifest.json"
    whole = json.loads(path.read_text())
    for damage in ('{"format": ', json.dumps({k: v for k, v in whole.items() if k != "id"}), json.dumps({**whole, "collections": [{"x": 1}]}), "[1]"):
        path.write_text(damage)
        with pytest.raises(RepositoryError, match=f"the manifest {path}"):
            repo.manifest("20261101T000000000000Z")
    listing = repo.snapshot_dir("20261101T000000000000Z") / OBJECTS
    data = listing.read_bytes()
    for damage in (data[: len(data) // 2], b"not gzip", gzip.compress(b"{not json}\n"), gzip.compress(b'{"key": "k"}\n')):
        listing.write_bytes(damage)
        with pytest.raises(RepositoryError, match=f"the object listing {listing}"):
            list(repo.objects("20261101T000000000000Z"))


def test_a_metadata_file_is_checked_against_the_manifest_and_parsed(tmp_path):
    repo = Repository(tmp_path)
    entry = CollectionEntry("users", 0, 0, "")  # as in a snapshot taken before the manifest recorded the metadata's SHA-256
    m = manifest("20261101T000000000000Z", collections=[entry])
    path = repo.dump_path(m.id, m.database, "users", ".metadata.json")
    path.parent.mkdir(parents=True)
    with pytest.raises(RepositoryError, match="cannot be read"):
        repo.metadata(m, entry)
    path.write_text('{"options": {}, "indexes": [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]}')
    assert repo.metadata(m, entry)["indexes"][0]["name"] == "_id_"
    for damage in ('{"options": {', '{"options": [], "indexes": []}', '{"indexes": [{"v": 2}]}'):
        path.write_text(damage)
        with pytest.raises(RepositoryError, match="users.metadata.json is damaged"):
            repo.metadata(m, entry)
    recorded = CollectionEntry("users", 0, 0, "", metadata_sha256=hashlib.sha256(b'{"options": {}}').hexdigest())
    path.write_text('{"options": {"capped": true, "size": 1}}')  # parses, but is not what the snapshot wrote
    with pytest.raises(RepositoryError, match="does not match the manifest's SHA-256"):
        repo.metadata(m, recorded)
    raw = asdict(manifest("x", collections=[entry]))
    del raw["collections"][0]["metadata_sha256"]  # an old manifest
    assert Manifest.parse(raw).collections == [entry]


def test_prune_removes_nothing_when_a_snapshot_it_would_keep_cannot_be_read(tmp_path):
    repo = Repository(tmp_path)
    old, new = repo.add_blob_bytes(b"old"), repo.add_blob_bytes(b"new")
    _snapshot(repo, "20261101T000000000000Z", [old])
    _snapshot(repo, "20261102T000000000000Z", [new])
    listing = repo.snapshot_dir("20261102T000000000000Z") / OBJECTS
    whole = listing.read_bytes()
    manifest_path = repo.snapshot_dir("20261102T000000000000Z") / "manifest.json"
    for damage in (lambda: listing.write_bytes(whole[:-5]), lambda: manifest_path.write_text("{")):
        damage()
        with pytest.raises(RepositoryError, match="nothing was pruned: snapshot 20261102T000000000000Z"):
            prune(repo, keep=1)
        assert repo.snapshot_ids() == ["20261101T000000000000Z", "20261102T000000000000Z"]
        assert repo.has_blob(old) and repo.has_blob(new)


def _cli(monkeypatch, *args: str):
    from rich.console import Console
    from typer.testing import CliRunner

    from services.cli import app, backup

    monkeypatch.setattr(backup, "console", Console(width=80))  # not a terminal: a pipe, a cron mail
    result = CliRunner().invoke(app, ["backup", *args])
    return result, result.output


def test_list_prints_whole_ids_names_damaged_manifests_and_refuses_a_file(tmp_path, monkeypatch):
    repo = Repository(tmp_path / "r")
    ids = ["20261101T000000000000Z", "20261102T000000000000Z", "20261103T000000000000Z"]
    for snapshot_id in ids:
        _snapshot(repo, snapshot_id, [])
    (repo.snapshot_dir(ids[1]) / "manifest.json").write_text('{"format": ')
    listed, said = _cli(monkeypatch, "list", "--repo", str(repo.root))
    assert listed.exit_code == 1, said
    assert ids[0] in said and ids[2] in said  # whole, in 80 columns
    assert f"{repo.snapshot_dir(ids[1]) / 'manifest.json'} is damaged" in " ".join(said.split())
    (repo.snapshot_dir(ids[1]) / "manifest.json").unlink()
    listed, said = _cli(monkeypatch, "list", "--repo", str(repo.root))
    assert listed.exit_code == 0 and ids[0] in said and ids[2] in said, said
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for root in (a_file, a_file / "repo"):
        refused, said = _cli(monkeypatch, "list", "--repo", str(root))
        assert refused.exit_code == 2 and "not a folder" in said and len(said.strip().splitlines()) == 1, said


def test_every_command_ends_with_one_line_on_a_damaged_manifest(tmp_path, monkeypatch):
    repo = Repository(tmp_path / "r")
    _snapshot(repo, "20261101T000000000000Z", [])
    path = repo.snapshot_dir("20261101T000000000000Z") / "manifest.json"
    whole = json.loads(path.read_text())
    for damage in ('{"options": {', json.dumps({k: v for k, v in whole.items() if k != "bucket"})):
        path.write_text(damage)
        for command in (["verify", "latest"], ["prune", "--keep", "1"]):
            result, said = _cli(monkeypatch, *command, "--repo", str(repo.root))
            assert result.exit_code == 2 and str(path) in " ".join(said.split()), said
            assert "Traceback" not in said and "Aborted" not in said


def test_only_create_makes_a_repository_the_other_commands_refuse_a_missing_one(tmp_path, monkeypatch):
    typo, empty = tmp_path / "typo", tmp_path / "empty"
    empty.mkdir()  # a folder, but no repository: nothing a snapshot makes is in it
    for root in (typo, empty):
        for command in (["list"], ["verify"], ["prune"], ["restore", "--no-reindex"]):
            result, said = _cli(monkeypatch, *command, "--repo", str(root))
            assert result.exit_code == 2 and said.startswith(f"no backup repository at {root}"), said
            assert len(said.strip().splitlines()) == 1, said  # no empty table, no progress bar
        assert not typo.exists() and list(empty.iterdir()) == []  # neither the folder nor a lock was made
