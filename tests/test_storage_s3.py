"""What is particular to files in a bucket (a real S3-compatible server, moto's, on 127.0.0.1):
an object appears only when whole, even when its worker is killed mid-upload; the sweep gives
up stale uploads and deletes the objects of expired exports; downloads redirect to a
presigned URL that ends with the export, or stream through the web process with Range."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from domain import demo
from domain.settings import Settings, SettingsError
from domain.storage import open_storage
from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, download, export_id, poll

ROOT = Path(__file__).resolve().parent.parent
BIG_KEY = "exports/e1/1/big.bin"
WRITE_BIG = f"""
import os, sys
from pathlib import Path
from domain.storage.s3 import S3Storage
storage = S3Storage(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
with storage.writing({BIG_KEY!r}, tag="e1~1") as out:
    for _ in range(64):
        out.write(os.urandom(1 << 20))
"""


@pytest.fixture
def storage(make_settings):
    storage = open_storage(make_settings())
    yield storage
    storage.close()


def uploads(storage) -> list[dict]:
    return storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix + "/").get("Uploads", [])


@pytest.mark.backends("s3")
def test_an_object_appears_only_when_whole(storage):
    with storage.writing("files/a.csv") as out:
        out.write(b"a;b\n" * 10)
        assert not storage.exists("files/a.csv")
    assert storage.size("files/a.csv") == 40 and storage.keys("files") == ["files/a.csv"]
    with pytest.raises(RuntimeError), storage.writing("files/b.csv") as out:
        out.write(b"x" * (9 << 20))
        raise RuntimeError("the writer failed")
    assert not storage.exists("files/b.csv")
    assert uploads(storage) == [] and list(storage.partials.iterdir()) == []
    with storage.writing("files/empty.csv"):
        pass
    assert storage.size("files/empty.csv") == 0
    local = storage.local_path("files/a.csv")  # a read-through copy, evicted when unread
    assert local.read_bytes() == b"a;b\n" * 10
    assert storage.evict_cache(3600) == 0 and storage.evict_cache(0) == 1 and not local.exists()
    with pytest.raises(FileNotFoundError):
        storage.local_path("files/none.csv")
    storage.delete("files")
    assert storage.keys("files") == []


@pytest.mark.backends("s3")
async def test_a_worker_killed_mid_upload_leaves_no_object_and_the_sweep_aborts_its_upload(storage, settings):
    writer = subprocess.Popen([sys.executable, "-c", WRITE_BIG, settings.storage_url, str(settings.data_dir), settings.s3_endpoint],
                              cwd=ROOT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while not uploads(storage):  # the multipart upload has begun: kill the writer now
            assert writer.poll() is None, "the writer ended before it could be killed mid-upload"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(10)
    assert not storage.exists(BIG_KEY) and storage.keys("exports") == []
    assert len(uploads(storage)) == 1  # started, never completed
    assert storage.abort_stale_uploads(0) == 1  # (moto dates every upload 2010: the grace itself is not tested here)
    assert uploads(storage) == [] and not storage.exists(BIG_KEY)
    assert storage.partial_tags() == {"e1~1"}  # the spooled file, which the partial sweep removes
    assert storage.sweep_partials(0, dead_tags={"e1~1"}) == 1


@pytest.mark.backends("s3")
async def test_downloads_redirect_to_a_presigned_url_that_ends_with_the_export(make_settings, start_worker, demo_dataset):
    settings = make_settings(export_ttl=120)
    start_worker(settings)
    async with TestClient(TestServer(create_app(settings))) as client:
        ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
        assert ready["status"] == "ready", ready
        response = await client.get("/" + ready["download_link"].split("/", 3)[3], allow_redirects=False)
        assert response.status == 302
        location = response.headers["Location"]
        assert location.startswith(settings.s3_endpoint)
        signed = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
        signed_at = datetime.strptime(signed["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        ends = signed_at.timestamp() + int(signed["X-Amz-Expires"])
        expires = datetime.fromisoformat(ready["expires_date"].replace("Z", "+00:00")).timestamp()
        assert 0 < int(signed["X-Amz-Expires"]) <= 120 and ends <= expires + 1  # no later than the export
        async with aiohttp.ClientSession() as session:
            async with session.get(location) as direct:
                body = await direct.read()
                assert direct.status == 200 and len(body) == ready["file_size"]
                assert 'filename="demo-events.csv"' in direct.headers["Content-Disposition"]
                assert direct.headers["Content-Type"] == "text/csv; charset=utf-8"
            async with session.get(location, headers={"Range": "bytes=3-12"}) as part:
                assert part.status == 206 and await part.read() == body[3:13]
        assert len(body.decode("utf-8-sig").splitlines()) > demo.ROWS


@pytest.mark.backends("s3-stream")
async def test_streamed_downloads_answer_ranges(client, worker, demo_dataset):
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "jsonl")))
    link, size = ready["download_link"], ready["file_size"]
    status, whole, headers = await download(client, link)
    assert status == 200 and len(whole) == size == int(headers["Content-Length"]) and headers["Accept-Ranges"] == "bytes"
    for asked, start, stop in (("bytes=0-0", 0, 1), ("bytes=100-", 100, size), ("bytes=-50", size - 50, size),
                               (f"bytes={size - 5}-{size + 100}", size - 5, size)):
        status, part, headers = await download(client, link, headers={"Range": asked})
        assert status == 206 and part == whole[start:stop], asked
        assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
    status, body, headers = await download(client, link, headers={"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    assert b"range_not_satisfiable" in body
    for ignored in ("bytes=9-2", "lines=1-2"):  # invalid, or another unit: the whole file (RFC 9110)
        status, body, headers = await download(client, link, headers={"Range": ignored})
        assert status == 200 and body == whole, ignored
    status, body, headers = await download(client, link, headers={"Range": "bytes=0-1,5-6"})
    assert status == 206 and headers["Content-Type"].startswith("multipart/byteranges")
    assert whole[0:2] in body and whole[5:7] in body


def test_storage_settings_come_from_the_environment(tmp_path):
    base = {"EXPORTD_DATA_DIR": str(tmp_path), "EXPORTD_SECRET_KEY": "k", "EXPORTD_ADMIN_TOKEN": "t"}
    local = Settings.from_env(base)
    assert local.storage_url == "" and local.s3_downloads == "redirect" and local.queue_read_limit == 100
    s3 = Settings.from_env({**base, "EXPORTD_STORAGE_URL": "s3://bucket/portal", "EXPORTD_S3_DOWNLOADS": "stream",
                            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "EXPORTD_QUEUE_READ_LIMIT": "40"})
    assert (s3.storage_url, s3.s3_downloads, s3.s3_endpoint, s3.queue_read_limit) == (
        "s3://bucket/portal", "stream", "http://127.0.0.1:9000", 40)
    for bad in ({"EXPORTD_STORAGE_URL": "/srv/exports"}, {"EXPORTD_S3_DOWNLOADS": "proxy"}):
        with pytest.raises(SettingsError):
            Settings.from_env({**base, **bad})
