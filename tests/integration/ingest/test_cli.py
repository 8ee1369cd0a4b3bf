"""``corpus ingest files`` and ``corpus import folder`` against an ingest app on the real stack."""

import asyncio
import re

from typer.testing import CliRunner

from services.cli import app
from tests.conftest import ADMIN_KEY
from tests.photos import skimage_photo
from tests.unit.ingest.datasets import make_folder


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"CORPUS_API_KEY": ADMIN_KEY}, catch_exceptions=False)


async def test_cli_uploads_a_folder_and_reports_each_rejection(make_ingest, tmp_path):
    client = await make_ingest(consume_submissions=False)
    url = str(client.make_url("")).rstrip("/")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "clock.png").write_bytes(skimage_photo("clock_motion.png"))
    (tmp_path / "in" / "cell.png").write_bytes(skimage_photo("cell.png"))
    (tmp_path / "in" / "fake.jpg").write_bytes(b"plain text pretending\n" * 10)
    result = await asyncio.to_thread(_invoke, "ingest", "files", str(tmp_path / "in"), "--url", url, "--batch", "2", "--tags", "cli")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "fake.jpg: not_an_image" in flat
    assert "rejected: not_an_image" in result.output


async def test_cli_import_follows_the_job_to_its_end(own_names, make_ingest, tmp_path):
    make_folder(tmp_path / "classes")
    client = await make_ingest(**own_names, consume_submissions=False, import_roots=[tmp_path], import_poll_seconds=0.2)
    url = str(client.make_url("")).rstrip("/")
    result = await asyncio.to_thread(_invoke, "import", "folder", str(tmp_path / "classes"), "--url", url, "--dataset", "cli-pets")
    assert result.exit_code == 0, result.output
    assert "done" in result.output and "cli-pets" in result.output
    outside = await asyncio.to_thread(_invoke, "import", "folder", "/etc", "--url", url)
    assert outside.exit_code == 1 and "outside the import roots" in " ".join(outside.output.split())


async def test_cli_uploads_an_archive_and_follows_its_import(own_names, make_ingest, tmp_path):
    from tests.integration.ingest.test_archive_imports import pets_tree, zipped

    client = await make_ingest(**own_names, consume_submissions=False, import_poll_seconds=0.2, import_staging_dir=tmp_path / "staging")
    url = str(client.make_url("")).rstrip("/")
    (tmp_path / "pets.zip").write_bytes(zipped(pets_tree()))
    result = await asyncio.to_thread(_invoke, "import", "archive", str(tmp_path / "pets.zip"), "--kind", "folder", "--url", url)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "done" in flat and "pets" in flat and re.search(r"ingested\W+4\b", flat), flat
    (tmp_path / "slip.zip").write_bytes(zipped({"../evil.png": b"x"}))
    refused = await asyncio.to_thread(_invoke, "import", "archive", str(tmp_path / "slip.zip"), "--kind", "folder", "--url", url)
    assert refused.exit_code == 1 and "outside the import's folder" in " ".join(refused.output.split())


async def test_cli_upload_rides_out_a_minio_outage(make_ingest, minio_proxy, tmp_path, mongo_db):
    """MinIO cut off behind a TCP forwarder as the upload starts, back 3 s later: the CLI repeats the
    batch the service answered 503 (under the same Idempotency-Key) and ends with every image stored."""
    import hashlib

    from services.ingest.adapters.repository import IMAGES
    from tests.photos import unique_png

    client = await make_ingest(own_exchange=True, minio_endpoint=minio_proxy.address, consume_submissions=False)
    url = str(client.make_url("")).rstrip("/")
    (tmp_path / "in").mkdir()
    shas = []
    for name in ("coffee.png", "chelsea.png", "rocket.jpg"):
        data = unique_png(skimage_photo(name))
        (tmp_path / "in" / f"outage-{name}.png").write_bytes(data)
        shas.append(hashlib.sha256(data).hexdigest())
    await minio_proxy.cut()

    async def back_later() -> None:
        await asyncio.sleep(3.0)
        await minio_proxy.restore()

    restoring = asyncio.create_task(back_later())
    result = await asyncio.to_thread(_invoke, "ingest", "files", str(tmp_path / "in"), "--url", url, "--batch", "2", "--retry-for", "60")
    await restoring
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "503" in flat and "retrying" in flat  # it met the outage and waited it out
    assert re.search(r"created\W+3\b", flat), flat
    assert await mongo_db[IMAGES].count_documents({"_id": {"$in": shas}}) == 3
