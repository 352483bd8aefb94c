"""A ready export carries the SHA-256 of its file, taken as the file is written (or read back
once where a writer's bytes pass the hashing by: zip headers rewritten, a file adopted whole),
on the local data directory and in a bucket, and for an export born ready on a shared file.
Its download answers `Repr-Digest` (RFC 9530) and a strong ETag that is that digest; ranges,
If-Range and conditional requests go by that ETag."""
from __future__ import annotations

import base64
import hashlib
import io
import os

import pytest

from domain.storage import Digest, open_storage
from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, download, export_id, poll
from tests.test_download_ranges import get


def repr_digest(data: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def link_path(ready: dict) -> str:
    return "/" + ready["download_link"].split("://", 1)[1].split("/", 1)[1]


@pytest.mark.backends("local", "s3-stream")
@pytest.mark.parametrize("export_type", ["csv", "geojson", "parquet", "shp", "xlsx", "fgb"])
async def test_a_ready_export_carries_the_sha256_of_its_file(client, worker, demo_dataset, export_type):
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, export_type)))
    assert ready["status"] == "ready", ready
    status, body, headers = await download(client, ready["download_link"])
    assert status == 200 and len(body) == ready["file_size"]
    assert ready["sha256"] == hashlib.sha256(body).hexdigest()
    assert headers["ETag"] == f'"{ready["sha256"]}"'
    assert headers["Repr-Digest"] == repr_digest(body)


async def test_the_digest_is_taken_as_the_file_is_written_and_read_back_when_bytes_pass_it_by(settings):
    storage = open_storage(settings)
    try:
        data = bytes(range(256)) * 100
        with storage.writing("t/plain.bin", digest=(digest := Digest())) as out:
            for at in range(0, len(data), 1000):
                out.write(data[at:at + 1000])
        assert out.whole and digest.sha256 == hashlib.sha256(data).hexdigest()
        with storage.writing("t/rewritten.bin", digest=(digest := Digest())) as out:
            out.write(b"\0" * 8 + data)
            out.seek(0)
            out.write(b"HEADER!!")  # as zipfile rewrites a local header
            out.seek(0, io.SEEK_END)
        assert not out.whole and digest.sha256 == hashlib.sha256(b"HEADER!!" + data).hexdigest()
        with storage.writing("t/by-descriptor.bin", digest=(digest := Digest())) as out:
            out.write(data[:10])
            out.flush()
            os.write(out.fileno(), data[10:])
        assert not out.whole and digest.sha256 == hashlib.sha256(data).hexdigest()
        with storage.writing("t/read-back.bin", digest=(digest := Digest(streamed=False))) as out:
            assert isinstance(out, io.BufferedWriter)  # the file itself, as polars wants it
            out.write(data)
        assert digest.sha256 == hashlib.sha256(data).hexdigest()
    finally:
        storage.close()


async def test_a_shared_file_carries_its_digest_to_the_export_born_ready_on_it(client, worker, demo_dataset, user_token):
    first = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "jsonl")))
    second = await create(client, await user_token("ann"), "jsonl")
    assert second["status"] == "ready" and second["sha256"] == first["sha256"]
    _, body, headers = await download(client, second["download_link"])
    assert hashlib.sha256(body).hexdigest() == second["sha256"] and headers["ETag"] == f'"{second["sha256"]}"'


@pytest.mark.backends("local", "s3-stream")
async def test_ranges_and_preconditions_go_by_the_digest_etag(client, worker, demo_dataset):
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
    path, etag, size = link_path(ready), f'"{ready["sha256"]}"', ready["file_size"]
    _, stored, whole = await get(client, path)
    status, body, part = await get(client, path, Range="bytes=-20", **{"If-Range": etag})
    assert status == 206 and body == stored[-20:] and part["Content-Range"] == f"bytes {size - 20}-{size - 1}/{size}"
    assert part["ETag"] == etag and part["Repr-Digest"] == repr_digest(stored)  # of the whole file, not the part
    for stale in ('"0-0"', f"W/{etag}", etag.replace(ready["sha256"][:4], "ffff")):
        status, body, _ = await get(client, path, Range="bytes=-20", **{"If-Range": stale})
        assert status == 200 and body == stored, stale
    status, _, answer = await get(client, path, **{"If-None-Match": etag})
    assert status == 304 and answer["ETag"] == etag and answer["Repr-Digest"] == whole["Repr-Digest"]
    assert (await get(client, path, **{"If-Match": etag}))[0] == 200
    assert (await get(client, path, **{"If-Match": '"other"'}))[0] == 412
    head = (await get(client, path, "HEAD"))[2]
    assert head["ETag"] == etag and head["Repr-Digest"] == whole["Repr-Digest"]
