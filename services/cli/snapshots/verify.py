"""Checking a snapshot without restoring it, and pruning old ones.

``verify`` reads what a restore would read: the manifest, every collection
dump (its SHA-256 and, in a deep check, its document count), the object
listing, and every blob it names (present, of the right size and, in a deep
check, hashing to its name). It also checks what the snapshot promises:
every object an image document names is in it.

``prune`` keeps the newest snapshots and removes the others, then every
blob that no kept snapshot names: blobs are shared, so a blob goes only when
its last snapshot goes.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

import bson

from services.cli.progress import Report, quiet
from services.cli.snapshots.repository import OBJECTS, Manifest, Repository, RepositoryError, sha256_of_file
from services.cli.snapshots.take import RAW, image_blob_keys
from shared.readmodels import IMAGES

PROBLEMS_LISTED = 1000


@dataclass
class VerifyReport:
    snapshot: str
    deep: bool
    collections: int = 0
    documents: int = 0
    objects: int = 0
    object_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < PROBLEMS_LISTED:
            self.problems.append(text)


def _check_collections(repo: Repository, manifest: Manifest, report: VerifyReport, progress: Report) -> set[str] | None:
    """Check each dump; return the object keys the image documents name (None when the images dump is unreadable)."""
    needed: set[str] | None = None
    for number, entry in enumerate(manifest.collections):
        progress(f"documents: {entry.name}", number, len(manifest.collections))
        path = repo.dump_path(manifest.id, manifest.database, entry.name, ".bson.gz")
        try:  # a restore reads it before writing anything: one that does not parse makes the snapshot unrestorable
            repo.metadata(manifest, entry)
        except RepositoryError as exc:
            report.problem(f"collection {entry.name}: {exc}")
        if not path.is_file():
            report.problem(f"collection {entry.name}: its dump {path} is missing")
            continue
        if not repo.dump_is_whole(manifest, entry):
            report.problem(f"collection {entry.name}: its dump {path} does not match the manifest's SHA-256")
            continue
        report.collections += 1
        if not report.deep and entry.name != IMAGES:
            report.documents += entry.documents
            continue
        count, keys = 0, set()
        try:
            with gzip.open(path, "rb") as packed:
                for document in bson.decode_file_iter(packed, codec_options=RAW):
                    count += 1
                    if entry.name == IMAGES:
                        keys.update(image_blob_keys(document))
        except (OSError, EOFError, bson.errors.BSONError) as exc:
            report.problem(f"collection {entry.name}: its dump cannot be read: {exc}")
            continue
        if count != entry.documents:
            report.problem(f"collection {entry.name}: {count} documents in the dump, the manifest says {entry.documents}")
        report.documents += count
        if entry.name == IMAGES:
            needed = keys
    return needed


def verify_snapshot(repo: Repository, snapshot_id: str | None = None, *, deep: bool = True, progress: Report = quiet) -> VerifyReport:
    with repo.locked(exclusive=False):
        snapshot_id = repo.resolve(snapshot_id)
        manifest = repo.manifest(snapshot_id)
        report = VerifyReport(snapshot_id, deep)
        needed = _check_collections(repo, manifest, report, progress)
        if not repo.listing_is_whole(manifest):
            report.problem(f"the object listing {repo.snapshot_dir(snapshot_id) / OBJECTS} is missing or does not match the manifest")
            return report
        keys = _check_objects(repo, manifest, report, progress)
        if keys is None:
            return report
        if report.objects != manifest.objects:
            report.problem(f"the listing names {report.objects} objects, the manifest says {manifest.objects}")
        for key in sorted((needed or set()) - keys):
            report.problem(f"object {key}: an image document names it, but the snapshot does not hold it")
        return report


def _check_objects(repo: Repository, manifest: Manifest, report: VerifyReport, progress: Report) -> set[str] | None:
    """Check every blob the listing names; return the listed keys (None when the listing does not read to its end)."""
    sound: set[str] = set()  # blobs already hashed and found whole (several objects may share one)
    keys = set()
    deep = report.deep
    try:
        for entry in repo.objects(manifest.id):
            keys.add(entry.key)
            report.objects += 1
            report.object_bytes += entry.size
            if report.objects % 1000 == 0:
                progress("objects", report.objects, manifest.objects)
            path = repo.blob_path(entry.sha256)
            if not path.is_file():
                report.problem(f"object {entry.key}: its blob {entry.sha256} is missing")
            elif path.stat().st_size != entry.size:
                report.problem(f"object {entry.key}: its blob has {path.stat().st_size} bytes, the listing says {entry.size}")
            elif deep and entry.sha256 not in sound:
                if sha256_of_file(path) == entry.sha256:
                    sound.add(entry.sha256)
                else:
                    report.problem(f"object {entry.key}: its blob {entry.sha256} is damaged (its bytes hash to something else)")
    except RepositoryError as exc:  # it matches the manifest yet does not parse (written so): a restore would stop midway on it
        report.problem(str(exc))
        return None
    return keys


@dataclass
class PruneReport:
    kept: list[str]
    removed: list[str]
    removed_blobs: int = 0
    freed_bytes: int = 0


def _named_blobs(repo: Repository, kept: list[str]) -> set[str]:
    """The blobs the kept snapshots name, read whole before anything is removed.

    A kept snapshot whose manifest or listing cannot be read refuses the whole prune: its blobs are not
    known (removing them would break it further), and removing the older snapshots could leave only it.
    """
    named: set[str] = set()
    for snapshot_id in kept:
        try:
            manifest = repo.manifest(snapshot_id)
            if not repo.listing_is_whole(manifest):
                raise RepositoryError(f"its object listing {repo.snapshot_dir(snapshot_id) / OBJECTS} does not match its manifest")
            named.update(entry.sha256 for entry in repo.objects(snapshot_id))
        except RepositoryError as exc:
            raise RepositoryError(
                f"nothing was pruned: snapshot {snapshot_id}, which would be kept, is damaged ({exc}); "
                f"run `corpus backup verify {snapshot_id}`, and remove it by hand or take a new snapshot first"
            ) from None
    return named


def prune(repo: Repository, keep: int) -> PruneReport:
    """Keep the newest ``keep`` snapshots (at least one); remove the rest and the blobs only they held.

    Everything is decided (which snapshots, which blobs) before the first removal, so a prune that cannot
    read what it needs removes nothing.
    """
    keep = max(1, keep)
    with repo.locked(exclusive=True):
        ids = repo.snapshot_ids()
        report = PruneReport(kept=ids[-keep:], removed=ids[:-keep])
        named = _named_blobs(repo, report.kept)
        unnamed = [(sha256, path) for sha256, path in repo.blob_shas() if sha256 not in named]
        for snapshot_id in report.removed:
            repo.remove_snapshot(snapshot_id)
        repo.remove_leftovers()  # a snapshot that died midway: nothing refers to it
        for _, path in unnamed:
            report.freed_bytes += path.stat().st_size
            path.unlink()
            report.removed_blobs += 1
        return report
