"""A backup repository on a filesystem: snapshots of the corpus that share their blobs.

Layout (a directory; put it on another disk, a mounted volume or a synced
folder)::

    <root>/lock                                   held by create and prune (exclusive), restore and verify (shared)
    <root>/blobs/<sha[:2]>/<sha>                  an object's bytes, named by their SHA-256: kept once, whatever
                                                  number of snapshots hold it (so each backup after the first
                                                  copies only what is new)
    <root>/snapshots/<id>/manifest.json           written last: a snapshot without it is unfinished and never
                                                  listed, verified or restored
    <root>/snapshots/<id>/mongo/<db>/<c>.bson.gz  mongodump's layout (gzip'd BSON documents, one after another),
    <root>/snapshots/<id>/mongo/<db>/<c>.metadata.json   so `mongorestore --gzip` can read it too
    <root>/snapshots/<id>/objects.jsonl.gz        one line per MinIO object: key, sha256, size, etag, content type

Every file is written under a temporary name, flushed to disk and renamed,
so a crash leaves either the whole file or none of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bson import json_util
from bson.errors import BSONError

FORMAT = "image-corpus-backup/1"
MANIFEST = "manifest.json"
OBJECTS = "objects.jsonl.gz"
CHUNK = 1024 * 1024
REPOSITORY_MARKS = ("lock", "snapshots", "blobs")  # what the first snapshot makes: a folder without any is no repository


class RepositoryError(Exception):
    """The repository or a snapshot in it is missing, unfinished or not one this tool writes."""


@dataclass
class CollectionEntry:
    name: str
    documents: int
    bytes: int  # of the compressed dump
    sha256: str  # of the compressed dump
    # of <collection>.metadata.json; None in snapshots taken before it was recorded (checked only for parsing)
    metadata_sha256: str | None = None


@dataclass
class Manifest:
    id: str
    created_at: str
    database: str
    bucket: str
    cluster_time: list[int] | None  # MongoDB's (seconds, increment) that every collection was read at
    collections: list[CollectionEntry]
    objects: int
    object_bytes: int
    objects_sha256: str  # of objects.jsonl.gz
    copied: int  # objects this snapshot copied; the rest were in the repository already
    copied_bytes: int
    images: int
    missing_objects: int = 0  # objects image documents name that the bucket did not hold
    format: str = FORMAT
    notes: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: Any) -> Manifest:
        """A manifest from its JSON; one cut short or edited (a field missing or of the wrong kind) raises RepositoryError.

        Every command reads manifests, and must end with a reason, not a TypeError's traceback.
        """
        found = raw.get("format") if isinstance(raw, dict) else None
        if found != FORMAT:
            raise RepositoryError(f"not a snapshot this tool reads (format {found!r}, expected {FORMAT!r})")
        try:
            return cls(**dict(raw, collections=[CollectionEntry(**c) for c in raw["collections"]]))
        except (KeyError, TypeError) as exc:
            raise RepositoryError(f"it does not have the fields of a manifest: {exc}") from None


@dataclass(frozen=True)
class ObjectEntry:
    key: str
    sha256: str
    size: int
    etag: str
    content_type: str

    def line(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode() + b"\n"


def new_snapshot_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def durable_write(path: Path, *, sync_folder: bool = True) -> Iterator[IO[bytes]]:
    """Open ``path`` for writing under a temporary name; on success flush it to disk and rename it in place.

    ``sync_folder=False`` leaves flushing the folder's entry (the rename) to the caller, who may flush
    a folder once for many files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        if sync_folder:
            _fsync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


class Repository:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._unsynced: set[Path] = set()  # blob folders with renames not yet flushed (see sync_blobs)

    # -- locations

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def snapshot_dir(self, snapshot_id: str) -> Path:
        return self.root / "snapshots" / snapshot_id

    def dump_path(self, snapshot_id: str, database: str, collection: str, suffix: str) -> Path:
        return self.snapshot_dir(snapshot_id) / "mongo" / database / f"{collection}{suffix}"

    def tmp_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- locking

    @contextlib.contextmanager
    def locked(self, *, exclusive: bool, create: bool = False) -> Iterator[None]:
        """Hold the repository's lock: one writer (create, prune) at a time, never beside a reader.

        Only ``create=True`` (a new snapshot) makes a missing repository; the others refuse it (see ``check_exists``).
        """
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            self.check_exists()
        with (self.root / "lock").open("a") as handle:
            try:
                fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RepositoryError(f"{self.root} is in use by another backup, prune or restore; try again when it ends") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- blobs

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).exists()

    def has_blob_of_size(self, sha256: str, size: int) -> bool:
        """The blob is there with ``size`` bytes: cheap enough for every object of every backup (no hashing).

        A blob cut short (a full disk, a copy that stopped) is then copied again rather than named by one
        more snapshot; a flipped byte needs a deep ``verify`` to be found.
        """
        try:
            return self.blob_path(sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def add_blob_bytes(self, data: bytes) -> str:
        """Store bytes under their SHA-256 (unless the store has them whole) and return it; durable after sync_blobs().

        A stored blob of the wrong size is damaged: it is replaced (by a rename, so it is never half-written).
        """
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.blob_path(sha256)
        if not self.has_blob_of_size(sha256, len(data)):
            with durable_write(target, sync_folder=False) as handle:
                handle.write(data)
            self._unsynced.add(target.parent)
        return sha256

    def add_blob_file(self, path: Path, sha256: str) -> None:
        """Move a downloaded file whose bytes hash to ``sha256`` into the store; durable after sync_blobs()."""
        target = self.blob_path(sha256)
        if self.has_blob_of_size(sha256, path.stat().st_size):
            path.unlink()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(path, target)
        self._unsynced.add(target.parent)

    def sync_blobs(self) -> None:
        """Flush the folders of the blobs added since the last call: each once, however many blobs it got.

        The file contents are flushed as each is written; only the renames wait for this.
        """
        while self._unsynced:
            _fsync_dir(self._unsynced.pop())

    # -- snapshots

    def snapshot_ids(self) -> list[str]:
        """Finished snapshots, oldest first."""
        self._check_folder()
        folder = self.root / "snapshots"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / MANIFEST).is_file())

    def check_exists(self) -> None:
        """Refuse a repository that is not there: a typo in --repo would otherwise list as an empty one, or be made
        (a folder and a lock) by a command that only reads. A repository holds a lock, snapshots or blobs."""
        self._check_folder()
        if not any((self.root / name).exists() for name in REPOSITORY_MARKS):
            raise RepositoryError(f"no backup repository at {self.root} (`corpus backup create` makes one)")

    def _check_folder(self) -> None:
        """Refuse a root that is (or lies under) a file: it would otherwise read as an empty repository."""
        existing = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise RepositoryError(f"the backup repository {self.root} cannot be used: {existing} is not a folder")

    def manifest(self, snapshot_id: str) -> Manifest:
        """A finished snapshot's manifest; a missing one, or one that does not parse, raises RepositoryError naming it."""
        path = self.snapshot_dir(snapshot_id) / MANIFEST
        if not path.is_file():
            known = ", ".join(self.snapshot_ids()) or "none"
            raise RepositoryError(f"no finished snapshot {snapshot_id!r} in {self.root} (finished: {known})")
        try:
            return Manifest.parse(json.loads(path.read_bytes()))
        except ValueError as exc:  # not JSON (cut short, overwritten), or not UTF-8
            raise RepositoryError(f"the manifest {path} is damaged: it is not JSON ({exc})") from None
        except RepositoryError as exc:
            raise RepositoryError(f"the manifest {path} cannot be used: {exc}") from None

    def resolve(self, snapshot_id: str | None) -> str:
        """The given snapshot, or the latest one when none is given."""
        if snapshot_id and snapshot_id != "latest":
            self.manifest(snapshot_id)  # raises when missing or unfinished
            return snapshot_id
        ids = self.snapshot_ids()
        if not ids:
            raise RepositoryError(f"{self.root} holds no finished snapshot")
        return ids[-1]

    def write_manifest(self, manifest: Manifest) -> None:
        with durable_write(self.snapshot_dir(manifest.id) / MANIFEST) as handle:
            handle.write(json.dumps(asdict(manifest), indent=2).encode())

    def listing_is_whole(self, manifest: Manifest) -> bool:
        """The snapshot's object listing is there and hashes to what its manifest says."""
        listing = self.snapshot_dir(manifest.id) / OBJECTS
        return listing.is_file() and sha256_of_file(listing) == manifest.objects_sha256

    def dump_is_whole(self, manifest: Manifest, entry: CollectionEntry) -> bool:
        """A collection's dump is there and hashes to what its manifest says."""
        path = self.dump_path(manifest.id, manifest.database, entry.name, ".bson.gz")
        return path.is_file() and sha256_of_file(path) == entry.sha256

    def metadata(self, manifest: Manifest, entry: CollectionEntry) -> dict[str, Any]:
        """A collection's options and indexes, checked: read by verify, and by restore before it writes anything.

        Its SHA-256 is compared when the manifest recorded one (snapshots taken before it did are only parsed).
        """
        path = self.dump_path(manifest.id, manifest.database, entry.name, ".metadata.json")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RepositoryError(f"the metadata file {path} cannot be read: {exc.strerror or exc}") from None
        if entry.metadata_sha256 and hashlib.sha256(data).hexdigest() != entry.metadata_sha256:
            raise RepositoryError(f"the metadata file {path} does not match the manifest's SHA-256")
        try:
            metadata = json_util.loads(data)
        except (ValueError, TypeError, BSONError) as exc:
            raise RepositoryError(f"the metadata file {path} is damaged: it is not extended JSON ({exc})") from None
        if not _is_metadata(metadata):
            raise RepositoryError(f"the metadata file {path} is damaged: it does not hold a collection's options and indexes")
        return metadata

    def objects(self, snapshot_id: str) -> Iterator[ObjectEntry]:
        """The snapshot's object listing, entry by entry; one that does not read to its end raises RepositoryError."""
        path = self.snapshot_dir(snapshot_id) / OBJECTS
        try:
            with gzip.open(path, "rb") as handle:
                for line in handle:
                    yield ObjectEntry(**json.loads(line))
        except (OSError, EOFError, ValueError, TypeError) as exc:  # gzip cut short or garbled, a line not an entry
            raise RepositoryError(f"the object listing {path} is missing or damaged: {exc}") from None

    def remove_leftovers(self) -> None:
        """Remove what a writer that died left behind: unfinished snapshots and partial downloads (hold the lock)."""
        for leftover in self.unfinished():
            self.remove_snapshot(leftover.name)
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        for partial in (self.root / "blobs").glob("*/.*.tmp"):  # a blob write that never reached its rename
            partial.unlink(missing_ok=True)

    def unfinished(self) -> list[Path]:
        folder = self.root / "snapshots"
        return [p for p in folder.iterdir() if not (p / MANIFEST).is_file()] if folder.is_dir() else []

    def remove_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot: its manifest first, so a crash midway leaves an unfinished one, never a broken one."""
        folder = self.snapshot_dir(snapshot_id)
        (folder / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)

    def blob_shas(self) -> Iterator[tuple[str, Path]]:
        folder = self.root / "blobs"
        if folder.is_dir():
            for path in folder.glob("*/*"):
                if not path.name.startswith("."):
                    yield path.name, path


def _is_metadata(metadata: Any) -> bool:
    """The shape a restore relies on: options a dict, and each index with a name and a key."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get("options", {}), dict):
        return False
    indexes = metadata.get("indexes", [])
    return isinstance(indexes, list) and all(isinstance(i, dict) and "name" in i and isinstance(i.get("key"), dict) for i in indexes)
