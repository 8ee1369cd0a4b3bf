"""Dataset archives (zip, tar, tar.gz, tar.bz2, tar.xz): recognised, checked and unpacked safely.

An uploaded archive is untrusted. Before anything is written it must pass:

- **format**: recognised from its bytes, not its name (zip, or a tar that ``tarfile``
  opens, compressed or not);
- **paths**: every member stays inside the destination; absolute names, ``..``
  parts, links, devices and FIFOs are refused (a zip-slip or a tar symlink
  pointing out is the whole archive's refusal, not a skipped member);
- **size**: the expanded bytes and the number of members have caps, counted as
  the bytes are really written, so an archive whose headers understate its
  content (a zip bomb) is stopped at the cap, not trusted.

A zip is checked from its central directory before the upload is accepted
(:func:`check`); a compressed tar has no index, so it is checked as it is
unpacked (:func:`unpack`) and a refusal fails the import with the reason.
"""

from __future__ import annotations

import errno
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

COPY_CHUNK = 1024 * 1024
# Names ending in these are stripped for the default dataset name (coco128.tar.gz → coco128).
SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")


class ArchiveRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_expanded_bytes: int
    max_members: int


def archive_format(path: Path) -> str:
    """``zip`` or ``tar`` from the file's bytes; ArchiveRefused otherwise."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        with tarfile.open(path, "r:*") as archive:
            archive.next()
    except (tarfile.TarError, OSError, EOFError):
        raise ArchiveRefused(
            "not_an_archive", "The upload is not a zip or tar archive (tar may be gzip-, bzip2- or xz-compressed)."
        ) from None
    return "tar"


def dataset_name(filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def inner_path(raw: str | None) -> str | None:
    """A path inside the archive as the caller gave it: relative, no ``..``. None means "find the root"."""
    if raw is None or not raw.strip():
        return None
    path = PurePosixPath(raw.strip().replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise ArchiveRefused("unsafe_path", f"The path {raw!r} must be relative to the archive's root, without '..'.")
    return path.as_posix()


def _safe_member_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ArchiveRefused("unsafe_path", f"The archive member {name!r} would be written outside the import's folder.")
    return path


def check(path: Path, fmt: str, limits: Limits) -> None:
    """What can be checked without unpacking: a zip's names, kinds and declared sizes."""
    if fmt != "zip":
        return
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveRefused("corrupt_archive", f"The zip's directory cannot be read: {exc}.") from None
    _check_count(len(infos), limits)
    declared = 0
    for info in infos:
        _safe_member_name(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveRefused("unsafe_member", f"The archive member {info.filename!r} is a symbolic link; links are not accepted.")
        declared += info.file_size
    _check_expanded(declared, limits)


def _check_count(count: int, limits: Limits) -> None:
    if count > limits.max_members:
        raise ArchiveRefused("archive_too_large", f"The archive has more than {limits.max_members:,} members.")


def _check_expanded(size: int, limits: Limits) -> None:
    if size > limits.max_expanded_bytes:
        raise ArchiveRefused(
            "archive_too_large", f"The archive expands to more than {limits.max_expanded_bytes:,} bytes."
        )


class _Budget:
    """Bytes and members written so far, against the limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits, self.written, self.members = limits, 0, 0

    def member(self) -> None:
        self.members += 1
        _check_count(self.members, self.limits)

    def copy(self, source, target: Path, declared: int) -> None:
        """Copy a member's bytes, never more than it declared nor past the expanded-bytes cap."""
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with open(target, "wb") as out:
            while chunk := source.read(COPY_CHUNK):
                written += len(chunk)
                self.written += len(chunk)
                if written > declared:
                    raise ArchiveRefused("corrupt_archive", f"The member {target.name!r} holds more bytes than its header says.")
                _check_expanded(self.written, self.limits)
                out.write(chunk)


def unpack(path: Path, fmt: str, destination: Path, limits: Limits) -> None:
    """Unpack into ``destination`` (created), checking every member; ArchiveRefused on the first bad one."""
    destination.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits)
    try:
        if fmt == "zip":
            _unpack_zip(path, destination, budget)
        else:
            _unpack_tar(path, destination, budget)
    except ArchiveRefused:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        shutil.rmtree(destination, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            raise  # the server's disk, not the archive: the job fails with this error as it is
        raise ArchiveRefused("corrupt_archive", f"The archive cannot be unpacked: {exc}.") from None


def _unpack_zip(path: Path, destination: Path, budget: _Budget) -> None:
    check(path, "zip", budget.limits)
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            budget.member()
            target = destination.joinpath(*_safe_member_name(info.filename).parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            with archive.open(info) as source:
                budget.copy(source, target, info.file_size)


def _unpack_tar(path: Path, destination: Path, budget: _Budget) -> None:
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            budget.member()
            target = destination.joinpath(*_safe_member_name(member.name).parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                source = archive.extractfile(member)
                assert source is not None
                budget.copy(source, target, member.size)
            elif member.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
                continue
            else:
                kind = "a link" if member.issym() or member.islnk() else "a device or FIFO"
                raise ArchiveRefused("unsafe_member", f"The archive member {member.name!r} is {kind}; only files and folders are accepted.")


def dataset_root(tree: Path, inner: str | None) -> Path:
    """Where the dataset starts inside the unpacked tree.

    With no path given, an archive holding one folder and nothing else starts in that folder
    (``coco128.zip`` holding ``coco128/``); ``.`` means the archive's own root.
    """
    if inner is not None:
        return tree / inner
    entries = [e for e in tree.iterdir() if not e.name.startswith(".") and e.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return tree
