"""Imports from an uploaded archive (``POST /v1/imports:upload``): real photos zipped and tarred here,
unpacked by the import worker, every unsafe archive refused with its reason."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import aiohttp
import pytest

from services.ingest.adapters.repository import IMAGES
from services.ingest.archive_staging import COMPLETE, UPLOADS, ArchiveStaging, archive_key
from services.ingest.config import IngestSettings
from services.ingest.domain.datasets import DatasetError
from shared.clients.blobs import BlobStore
from tests.integration.ingest.test_imports import _annotation_events as _events
from tests.integration.ingest.test_imports import finished
from tests.photos import skimage_photo, skimage_photos, unique_png
from tests.unit.ingest.datasets import make_voc

CLASSES = {"Astronaut_Photos": ("astronaut.png", "camera.png"), "coffee-cups": ("coffee.png", "chelsea.png")}


def _photo(name: str) -> Path:
    return next(p for p in skimage_photos() if p.name == name)


def zipped(members: dict[str, bytes], *, links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in links:  # a symbolic link as zip stores it: the mode in the external attributes
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            archive.writestr(info, "../../etc/passwd")
    return buf.getvalue()


def tarred(members: dict[str, bytes], mode: str = "w:gz", *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
    return buf.getvalue()


def pets_tree() -> dict[str, bytes]:
    """An ImageNet-style tree under one top folder, as people zip it: pets/<class>/<photo>."""
    return {f"pets/{cls}/{name}": _photo(name).read_bytes() for cls, names in CLASSES.items() for name in names}


@pytest.fixture
async def uploader(own_names, make_ingest, tmp_path):
    return await make_ingest(
        **own_names, consume_submissions=False, import_poll_seconds=0.2, import_staging_dir=tmp_path / "staging",
        import_archive_max_expanded_bytes=20 * 1024**2,
    )  # fmt: skip


@pytest.fixture
async def own_blobs(own_names):
    store = BlobStore(IngestSettings(**own_names))
    await store.ensure_bucket()
    yield store
    await store.close()


async def upload(client, archive: bytes, filename: str, *, key: str | None = None, **fields: str) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("archive", archive, filename=filename, content_type="application/octet-stream")
    return await client.post("/v1/imports:upload", data=form, headers={"Idempotency-Key": key} if key else None)




async def test_a_zipped_folder_tree_is_imported_with_its_classes_and_then_cleared_away(uploader, own_db, own_blobs, tmp_path):
    archive = zipped(pets_tree())
    response = await upload(uploader, archive, "pets.zip", kind="folder", tags="Zipped")
    assert response.status == 202, await response.text()
    accepted = await response.json()
    assert accepted["archive"]["name"] == "pets.zip" and accepted["archive"]["format"] == "zip"
    assert accepted["archive"]["bytes"] == len(archive) and accepted["dataset"] == "pets"

    job = await finished(uploader, accepted["id"])
    assert job["status"] == "done", job
    assert job["total"] == job["processed"] == 4 and job["counts"]["ingested"] == 4
    # The single top folder is the dataset's root, so each photo's folder is its class.
    events = await _events(own_db, job["id"])
    labels = {e["image_id"]: [a["label"] for a in e["annotations"]] for e in events}
    assert sorted(label for found in labels.values() for label in found) == sorted(
        ["astronaut photos", "astronaut photos", "coffee cups", "coffee cups"]
    )
    stored = await own_db[IMAGES].find({"origin.import_id": job["id"]}).to_list()
    assert len(stored) == 4 and all(doc["tags"] == ["zipped"] and doc["origin"]["dataset"] == "pets" for doc in stored)
    assert sorted(doc["origin"]["uri"] for doc in stored) == sorted(f"{c}/{n}" for c, ns in CLASSES.items() for n in ns)

    # Nothing is left behind: the unpacked tree and the stored archive go when the job ends.
    assert not (tmp_path / "staging" / job["id"]).exists()
    assert not await own_blobs.exists(archive_key(job["id"]))


async def test_a_file_an_archive_names_outside_itself_is_refused_unread(uploader, own_db, tmp_path_factory):
    """An uploaded COCO JSON may name any file on the server (absolute, or ``../`` up to the root); an upload
    needs no import root, so only the check on every file read keeps them out."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    secret = unique_png(skimage_photo("camera.png"))
    (elsewhere / "secret.png").write_bytes(secret)
    own = unique_png(skimage_photo("coffee.png"))
    climbing = "../" * 40 + str(elsewhere / "secret.png").lstrip("/")
    images = [{"id": 1, "file_name": "own.png"}, {"id": 2, "file_name": str(elsewhere / "secret.png")}, {"id": 3, "file_name": climbing}]
    doc = {"images": images, "annotations": [], "categories": []}
    archive = zipped({"ds/annotations/instances.json": json.dumps(doc).encode(), "ds/images/own.png": own})
    response = await upload(uploader, archive, "ds.zip", kind="coco")
    assert response.status == 202, await response.text()

    job = await finished(uploader, (await response.json())["id"])
    assert job["status"] == "done" and job["total"] == 3, job
    assert job["counts"]["ingested"] == 1 and job["counts"]["rejected"] == 2, job
    rejected = (await (await uploader.get("/v1/rejections", params={"import_id": job["id"]})).json())["items"]
    assert [(r["reason"], r["filename"]) for r in rejected] == [("outside_dataset", "secret.png")] * 2
    assert await own_db[IMAGES].find_one({"_id": hashlib.sha256(secret).hexdigest()}) is None


async def test_a_repeat_under_its_key_is_the_same_job_and_another_archive_under_it_is_refused(uploader, tmp_path):
    tree = pets_tree()
    archive = zipped(tree)
    first = await upload(uploader, archive, "pets.zip", key="pets-once", kind="folder")
    assert first.status == 202, await first.text()
    job = await first.json()
    again = await upload(uploader, archive, "pets.zip", key="pets-once", kind="folder")
    assert again.status == 202 and again.headers.get("Idempotent-Replayed") == "true" and (await again.json())["id"] == job["id"]
    fewer = dict(list(tree.items())[:-1])
    other = await upload(uploader, zipped(fewer), "pets.zip", key="pets-once", kind="folder")
    assert other.status == 422 and (await other.json())["type"].endswith("idempotency-key-reused")
    assert not any((tmp_path / "staging" / UPLOADS).iterdir())  # the repeats' archives were read for their SHA-256, then dropped
    assert (await finished(uploader, job["id"]))["status"] == "done"


async def test_a_voc_tar_gz_carries_its_boxes_and_dot_means_the_archive_root(uploader, own_db, tmp_path):
    doc = make_voc(tmp_path / "voc", count=3)
    members = {p.relative_to(tmp_path / "voc").as_posix(): p.read_bytes() for p in (tmp_path / "voc").rglob("*") if p.is_file()}
    job = await finished(uploader, (await (await upload(uploader, tarred(members), "voc2007.tar.gz", kind="voc", path=".")).json())["id"])
    assert job["status"] == "done" and job["total"] == 3 and job["dataset"] == "voc2007", job
    events = await _events(own_db, job["id"])
    assert sum(len(e["annotations"]) for e in events) == len(doc["annotations"])
    assert all(a["type"] == "bbox" for e in events for a in e["annotations"])


@pytest.mark.parametrize(
    ("archive", "filename", "status", "reason"),
    [
        (zipped({"../evil.png": b"x"}), "slip.zip", 422, "unsafe_path"),
        (zipped({"/etc/cron.d/evil": b"x"}), "absolute.zip", 422, "unsafe_path"),
        (zipped({"ok/a.png": b"x"}, links=("ok/link",)), "link.zip", 422, "unsafe_member"),
        (zipped({"bomb/zeros.bin": bytes(30 * 1024**2)}), "bomb.zip", 422, "archive_too_large"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "photo.zip", 422, "not_an_archive"),
    ],
    ids=["zip-slip", "absolute", "symlink", "zip-bomb", "not-an-archive"],
)
async def test_unsafe_archives_are_refused_before_a_job_exists(uploader, own_db, own_blobs, archive, filename, status, reason):
    response = await upload(uploader, archive, filename, kind="folder")
    assert response.status == status
    problem = await response.json()
    assert problem["reason"] == reason, problem
    assert await own_db["imports"].count_documents({}) == 0
    assert [key async for page in own_blobs.list_pages("imports/") for key, _ in page] == []


async def test_bad_upload_requests_are_answered_with_problems(own_names, make_ingest, uploader, tmp_path):
    unknown = await upload(uploader, zipped(pets_tree()), "pets.zip", kind="csv")
    assert unknown.status == 422 and "kind" in (await unknown.json())["detail"]
    escaping = await upload(uploader, zipped(pets_tree()), "pets.zip", kind="folder", path="../etc")
    assert escaping.status == 422 and (await escaping.json())["reason"] == "unsafe_path"
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("kind", "folder")
    missing = await uploader.post("/v1/imports:upload", data=form)
    assert missing.status == 400 and "archive" in (await missing.json())["detail"]
    not_multipart = await uploader.post("/v1/imports:upload", json={"kind": "folder"})
    assert not_multipart.status == 415

    small = await make_ingest(**own_names, import_archive_max_bytes=4096, import_staging_dir=tmp_path / "small")
    too_big = await upload(small, zipped(pets_tree()), "pets.zip", kind="folder")
    assert too_big.status == 413 and (await too_big.json())["limit"] == 4096
    assert list((tmp_path / "small" / "uploads").iterdir()) == []  # the spooled part is gone

    (tmp_path / "not-a-folder").write_text("a file where the staging folder should be")
    broken = await make_ingest(**own_names, import_staging_dir=tmp_path / "not-a-folder" / "staging")
    unwritable = await upload(broken, zipped(pets_tree()), "pets.zip", kind="folder")
    assert unwritable.status == 507 and "could not be spooled" in (await unwritable.json())["detail"]


@pytest.mark.parametrize(
    ("archive", "expected"),
    [
        (tarred({"pets/a/astronaut.png": _photo("astronaut.png").read_bytes()}, symlink="pets/a/link.png"), "is a link"),
        (tarred({"bomb/zeros.bin": bytes(30 * 1024**2)}, mode="w:xz"), "expands to more than"),
        (tarred({"../../escape.png": b"x"}, mode="w:bz2"), "outside the import's folder"),
    ],
    ids=["tar-symlink", "tar-bomb", "tar-slip"],
)
async def test_a_tar_is_checked_as_it_is_unpacked_and_the_job_fails_with_the_reason(uploader, own_db, own_blobs, tmp_path, archive, expected):
    response = await upload(uploader, archive, "data.tar", kind="folder")
    assert response.status == 202, await response.text()
    job = await finished(uploader, (await response.json())["id"])
    assert job["status"] == "failed" and expected in job["error"], job
    assert await own_db[IMAGES].count_documents({}) == 0
    assert not (tmp_path / "staging" / job["id"]).exists()
    assert not await own_blobs.exists(archive_key(job["id"]))
    assert not (tmp_path.parent / "escape.png").exists()


async def test_a_job_resumed_on_another_machine_unpacks_the_stored_archive_again(own_names, own_blobs, tmp_path):
    """Staging is per machine: a process that takes the job over without the tree downloads and unpacks
    it again, a half-unpacked tree (no marker) is redone, and a damaged archive is refused."""
    archive = tarred(pets_tree(), mode="w")
    await own_blobs.put(archive_key("job-1"), archive, "application/x-tar")
    import hashlib

    job = {"_id": "job-1", "path": "", "archive": {"name": "pets.tar", "sha256": hashlib.sha256(archive).hexdigest(), "format": "tar"}}
    first = ArchiveStaging(own_blobs, IngestSettings(**own_names, import_staging_dir=tmp_path / "machine-a"))
    second = ArchiveStaging(own_blobs, IngestSettings(**own_names, import_staging_dir=tmp_path / "machine-b"))
    (tmp_path / "machine-b" / "job-1" / "tree").mkdir(parents=True)
    (tmp_path / "machine-b" / "job-1" / "tree" / "half-written.png").write_bytes(b"partial")

    root_a, root_b = await first.dataset_path(job), await second.dataset_path(job)
    assert root_a.name == root_b.name == "pets"

    def files(root: Path) -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    assert files(root_a) == files(root_b) == sorted(f"{c}/{n}" for c, ns in CLASSES.items() for n in ns)
    assert not (tmp_path / "machine-b" / "job-1" / "tree" / "half-written.png").exists()
    assert (tmp_path / "machine-b" / "job-1" / COMPLETE).exists()
    # A second call on the same machine reuses the finished tree.
    (root_a / "marker.txt").write_text("kept")
    assert (await first.dataset_path(job)) == root_a and (root_a / "marker.txt").exists()

    damaged = {**job, "_id": "job-2", "archive": {**job["archive"], "sha256": "0" * 64}}
    await own_blobs.put(archive_key("job-2"), archive, "application/x-tar")
    with pytest.raises(DatasetError, match="SHA-256"):
        await first.dataset_path(damaged)
    with pytest.raises(DatasetError, match="no longer in the object store"):
        await first.dataset_path({**job, "_id": "job-3"})

    await first.remove(job)
    assert not (tmp_path / "machine-a" / "job-1").exists() and not await own_blobs.exists(archive_key("job-1"))


async def test_leftovers_of_ended_jobs_and_crashed_uploads_are_cleared_at_start(own_names, make_ingest, own_blobs, tmp_path):
    import os
    import time

    staging = tmp_path / "staging"
    for job_id in ("ended-job", "live-job"):
        (staging / job_id / "tree").mkdir(parents=True)
        (staging / job_id / "tree" / "a.png").write_bytes(b"x")
    (staging / "uploads").mkdir()
    (staging / "uploads" / "upload-crashed").write_bytes(b"half an archive")
    (staging / "uploads" / "upload-receiving").write_bytes(b"being received by another process")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(staging / "uploads" / "upload-crashed", (two_days_ago, two_days_ago))

    cleaner = ArchiveStaging(own_blobs, IngestSettings(**own_names, import_staging_dir=staging))
    assert await cleaner.clear_leftovers({"live-job"}) == 2
    assert sorted(p.name for p in staging.iterdir()) == ["live-job", "uploads"]
    assert [p.name for p in (staging / "uploads").iterdir()] == ["upload-receiving"]

    # The service does it when it starts: no job is queued or running, so the tree of "live-job" goes too.
    await make_ingest(**own_names, consume_submissions=False, import_staging_dir=staging)
    assert [p.name for p in staging.iterdir()] == ["uploads"]


async def test_the_coco_sample_sent_as_a_tar_gz_arrives_with_all_its_annotations(own_names, make_ingest, tmp_path):
    from tests.photos import require_coco

    coco = require_coco()  # skips, saying why, where the sample is absent
    uploader = await make_ingest(**own_names, consume_submissions=False, import_poll_seconds=0.2, import_staging_dir=tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        archive.add(coco / "images", arcname="coco128/images")
        archive.add(coco / "annotations" / "instances.json", arcname="coco128/annotations/instances.json")
    response = await upload(uploader, buf.getvalue(), "coco128.tar.gz", kind="coco", dataset="coco128-archive")
    assert response.status == 202, await response.text()
    job = await finished(uploader, (await response.json())["id"])
    assert job["status"] == "done", job["error"]
    assert job["total"] == job["processed"] == 128 and job["counts"]["rejected"] == 0
    assert job["counts"]["annotations_sent"] == 939 and job["counts"]["annotation_events"] == 128
