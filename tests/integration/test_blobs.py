import hashlib

import aiohttp
import pytest

from shared.clients.blobs import BlobNotFound, BlobWriteError, original_key
from tests.photos import skimage_photo


async def test_put_get_exists_and_presigned_url_serve_the_same_bytes(blob_store):
    data = skimage_photo("coffee.png")
    key = original_key(hashlib.sha256(data).hexdigest())
    assert not await blob_store.exists(key)
    await blob_store.put(key, data, "image/png")
    await blob_store.put(key, data, "image/png")  # content-addressed: a repeat is harmless
    assert await blob_store.exists(key)
    assert await blob_store.get(key) == data
    url = blob_store.presigned_url(key)
    assert "X-Amz-Expires=" in url
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert await response.read() == data
    tampered = url.replace("X-Amz-Expires=", "X-Amz-Expires=1")
    async with aiohttp.ClientSession() as http, http.get(tampered) as response:
        assert response.status == 403  # the signature covers the expiry


async def test_a_write_whose_bytes_do_not_match_their_checksum_is_refused_and_not_stored(blob_store):
    data = skimage_photo("text.png")
    key = original_key(hashlib.sha256(data).hexdigest())
    with pytest.raises(BlobWriteError, match="400"):
        await blob_store.put(key, data[:-10], "image/png", sha256=hashlib.sha256(data).hexdigest())
    assert not await blob_store.exists(key)
    await blob_store.put(key, data, "image/png", sha256=hashlib.sha256(data).hexdigest())
    assert await blob_store.get(key) == data


async def test_reading_a_key_nobody_wrote_says_so_by_its_own_error(blob_store, tmp_path):
    key = original_key("0" * 64)
    with pytest.raises(BlobNotFound):
        await blob_store.fetch(key)
    with pytest.raises(BlobNotFound):
        await blob_store.download(key, tmp_path / "x")
    data = skimage_photo("camera.png")
    key = original_key(hashlib.sha256(data).hexdigest())
    await blob_store.put(key, data, "image/png")
    assert await blob_store.fetch(key) == (data, "image/png")
    got = await blob_store.download(key, tmp_path / "y")
    assert got == (hashlib.sha256(data).hexdigest(), len(data), "image/png") and (tmp_path / "y").read_bytes() == data
