"""Downloads as RFC 9110 has them: HEAD, byte ranges (suffix, open, closed, several), 416 with
`Content-Range: bytes */SIZE`, If-Range with an ETag or a date, conditional GET; on the local
data directory and through a bucket streamed by the web process; a bucket that redirects
answers HEAD with its redirect. Every byte returned is compared with the stored file's."""
from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict

from api.ranges import MAX_RANGES, Unsatisfiable, requested
from domain.exports import ExportRepo, file_key
from domain.storage import open_storage
from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, export_id, poll
from tests.test_management import ADMIN, M, upload

STREAMED = pytest.mark.backends("local", "s3-stream")


async def ready_export(client, settings, state) -> tuple[str, bytes]:
    """The path of a ready CSV export's signed link, and the bytes stored for it."""
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
    export = await ExportRepo(state).get(export_id(ready))
    storage = open_storage(settings)
    try:
        body = storage.open_range(file_key(export))
        try:
            stored = body.read()
        finally:
            body.close()
    finally:
        storage.close()
    assert len(stored) == ready["file_size"] > 1000
    return "/" + ready["download_link"].split("://", 1)[1].split("/", 1)[1], stored


async def get(client, path: str, method: str = "GET", **headers: str) -> tuple[int, bytes, CIMultiDict]:
    response = await client.request(method, path, headers=headers, allow_redirects=False)
    return response.status, await response.read(), response.headers


def assert_416(status: int, body: bytes, headers, size: int) -> None:
    assert status == 416, (status, body[:200])
    assert headers["Content-Range"] == f"bytes */{size}"
    assert headers["Content-Type"].startswith("application/json")
    assert orjson.loads(body)["error_code"] == "range_not_satisfiable"


def test_range_headers_are_read_as_rfc_9110_writes_them():
    assert requested(None, 100) is None
    assert requested("bytes=0-9", 100) == [(0, 10)]
    assert requested("bytes= 0-9 , ,-5", 100) == [(0, 10), (95, 100)]  # empty list elements are allowed
    assert requested("bytes=-500", 100) == [(0, 100)]
    for ignored in ("bytes = 0-9", "bytes=\u0661-\u0662", "bytes=1-2-3", "bytes=-", "bytes=1--2", "bytes=0-9,x",
                    "pages=1-2", "bytes=0-9,9-9", ",".join(["bytes=0-0"] + [f"{i}-{i}" for i in range(1, MAX_RANGES + 1)])):
        assert requested(ignored, 100) is None, ignored
    assert len(requested("bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES)), 100)) == MAX_RANGES
    for unsatisfiable in ("bytes=-0", "bytes=100-", "bytes=100-100,-0", "bytes=" + "9" * 5000 + "-"):
        with pytest.raises(Unsatisfiable):
            requested(unsatisfiable, 100)
    assert requested("bytes=-5", 0) is None  # satisfiable on an empty file, but only as the whole of it
    with pytest.raises(Unsatisfiable):
        requested("bytes=0-", 0)


@STREAMED
async def test_head_answers_the_headers_of_get_without_the_file(client, worker, demo_dataset, settings, state):
    path, stored = await ready_export(client, settings, state)
    status, body, got = await get(client, path)
    assert status == 200 and body == stored
    head_status, head_body, head = await get(client, path, "HEAD")
    assert head_status == 200 and head_body == b""
    for name in ("Content-Type", "Content-Disposition", "Content-Length", "ETag", "Last-Modified", "Accept-Ranges", "Cache-Control"):
        assert head[name] == got[name], name
    assert got["Content-Length"] == str(len(stored)) and got["Accept-Ranges"] == "bytes"
    assert got["ETag"].startswith('"') and not got["ETag"].startswith('"W/')
    # Range is defined for GET only (RFC 9110 section 14.2): a HEAD describes the whole file
    assert (await get(client, path, "HEAD", Range="bytes=-0"))[0] == 200
    assert (await get(client, path, "HEAD", Range="bytes=0-9"))[2]["Content-Length"] == str(len(stored))


@pytest.mark.backends("s3")
async def test_head_on_a_redirecting_bucket_redirects_too(client, worker, demo_dataset, settings, state):
    path, stored = await ready_export(client, settings, state)
    status, _, got = await get(client, path)
    head_status, head_body, head = await get(client, path, "HEAD")
    assert status == head_status == 302 and head_body == b""
    assert head["Location"].startswith(settings.s3_endpoint)
    async with aiohttp.ClientSession() as session:  # the bucket serves the bytes and ranges
        async with session.get(head["Location"], headers={"Range": "bytes=-10"}) as response:
            assert response.status == 206 and await response.read() == stored[-10:]


@STREAMED
async def test_suffix_open_and_closed_ranges_are_the_exact_bytes(client, worker, demo_dataset, settings, state):
    path, stored = await ready_export(client, settings, state)
    size = len(stored)
    cases = {
        "bytes=-10": (size - 10, size), "bytes=-1": (size - 1, size), f"bytes=-{size + 500}": (0, size),
        "bytes=100-": (100, size), f"bytes={size - 1}-": (size - 1, size), "bytes=0-": (0, size),
        "bytes=0-0": (0, 1), "bytes=10-29": (10, 30), f"bytes=5-{size + 10_000}": (5, size),
        f"bytes=7-{'9' * 40}": (7, size), " bytes = 3-4 ": None, "BYTES=3-4": (3, 5), "bytes=3-4,": (3, 5),
    }
    for header, wanted in cases.items():
        status, body, got = await get(client, path, Range=header)
        if wanted is None:  # not a valid ranges-specifier: ignored
            assert status == 200 and body == stored, header
            continue
        start, stop = wanted
        assert status == 206, (header, status, body[:200])
        assert body == stored[start:stop], header
        assert got["Content-Range"] == f"bytes {start}-{stop - 1}/{size}", header
        assert got["Content-Length"] == str(stop - start) and got["ETag"] and got["Accept-Ranges"] == "bytes"


@STREAMED
async def test_unsatisfiable_ranges_are_416_and_invalid_ones_are_ignored(client, worker, demo_dataset, settings, state):
    path, stored = await ready_export(client, settings, state)
    size = len(stored)
    for header in ("bytes=-0", f"bytes={size}-", f"bytes={size + 100}-{size + 200}", f"bytes={'9' * 40}-",
                   f"bytes=-0,{size}-", f"bytes=-0, {size + 1}-{size + 9}"):
        assert_416(*await get(client, path, Range=header), size)
    for header in ("bytes=abc", "bytes=5-2", "bytes=1-2-3", "bytes=", "bytes=,", "bytes=--5", "bytes=+1-2",
                   "items=0-9", "bytes 0-9", "bytes=0x10-20", "bytes=0-9,5-2"):
        status, body, got = await get(client, path, Range=header)
        assert status == 200 and body == stored, header
        assert "Content-Range" not in got
    status, body, got = await get(client, path, Range=f"bytes=-0,{size - 5}-,{size}-")  # unsatisfiable ones dropped
    assert status == 206 and body == stored[-5:] and got["Content-Range"] == f"bytes {size - 5}-{size - 1}/{size}"


@STREAMED
async def test_if_range_with_an_etag_or_a_date(client, worker, demo_dataset, settings, state):
    path, stored = await ready_export(client, settings, state)
    _, _, got = await get(client, path, "HEAD")
    etag, modified = got["ETag"], got["Last-Modified"]
    moment = parsedate_to_datetime(modified)
    matching = (etag, modified)
    others = ('"not-the-etag"', f"W/{etag}", etag[:-1], format_datetime(moment - timedelta(seconds=1), usegmt=True),
              format_datetime(moment + timedelta(seconds=1), usegmt=True), "yesterday", "")
    for value in matching:
        status, body, answer = await get(client, path, Range="bytes=-20", **{"If-Range": value})
        assert status == 206 and body == stored[-20:], value
        assert answer["Content-Range"] == f"bytes {len(stored) - 20}-{len(stored) - 1}/{len(stored)}"
    for value in others:
        status, body, answer = await get(client, path, Range="bytes=-20", **{"If-Range": value})
        assert status == 200 and body == stored, value
        assert "Content-Range" not in answer and answer["ETag"] == etag
    # a stale If-Range wins over an unsatisfiable range: the whole file, not a 416
    status, body, _ = await get(client, path, Range="bytes=-0", **{"If-Range": '"stale"'})
    assert status == 200 and body == stored
    assert_416(*await get(client, path, Range="bytes=-0", **{"If-Range": etag}), len(stored))


@STREAMED
async def test_several_ranges_are_multipart_byteranges(client, worker, demo_dataset, settings, state):
    path, stored = await ready_export(client, settings, state)
    size = len(stored)
    asked = f"bytes=500-599, -25, 0-9, {size + 5}-"  # in the order asked; the last is unsatisfiable: dropped
    expected = [(500, 600), (size - 25, size), (0, 10)]
    status, body, got = await get(client, path, Range=asked)
    assert status == 206 and got["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert "Content-Range" not in got and int(got["Content-Length"]) == len(body)
    response = await client.get(path, headers={"Range": asked})
    reader = aiohttp.MultipartReader.from_response(response)
    parts = []
    while (part := await reader.next()) is not None:
        parts.append((part.headers["Content-Type"], part.headers["Content-Range"], bytes(await part.read())))
    media_type = (await get(client, path, "HEAD"))[2]["Content-Type"]
    assert parts == [(media_type, f"bytes {a}-{b - 1}/{size}", stored[a:b]) for a, b in expected]
    # overlapping ranges, or more than 16, are the whole file: no amplification
    for header in ("bytes=0-99,50-149", "bytes=0-,-1", "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(17))):
        status, body, got = await get(client, path, Range=header)
        assert status == 200 and body == stored and "Content-Range" not in got, header
    sixteen = [(i * 10, i * 10 + 2) for i in range(16)]
    status, body, got = await get(client, path, Range="bytes=" + ",".join(f"{a}-{b - 1}" for a, b in sixteen))
    assert status == 206 and got["Content-Type"].startswith("multipart/byteranges")
    assert all(stored[a:b] in body for a, b in sixteen)
    adjacent = await get(client, path, Range="bytes=0-9,10-19")  # touching, not overlapping
    assert adjacent[0] == 206 and adjacent[2]["Content-Type"].startswith("multipart/byteranges")


@STREAMED
async def test_conditional_get(client, worker, demo_dataset, settings, state):
    path, stored = await ready_export(client, settings, state)
    _, _, got = await get(client, path, "HEAD")
    etag, modified = got["ETag"], got["Last-Modified"]
    for method in ("GET", "HEAD"):
        for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"other", W/{etag}'}, {"If-None-Match": "*"},
                        {"If-Modified-Since": modified}):
            status, body, answer = await get(client, path, method, **headers)
            assert status == 304 and body == b"" and answer["ETag"] == etag, (method, headers)
    for headers in ({"If-None-Match": '"other"'}, {"If-None-Match": '"other"', "If-Modified-Since": modified},
                    {"If-Match": etag}, {"If-Match": "*"}, {"If-Unmodified-Since": modified}):
        status, body, _ = await get(client, path, **headers)
        assert status == 200 and body == stored, headers
    for headers in ({"If-Match": '"other"'}, {"If-Match": f"W/{etag}"}):
        status, body, answer = await get(client, path, **headers)
        assert status == 412 and answer["Content-Type"].startswith("application/json"), headers


@STREAMED
async def test_other_stored_files_answer_head_and_ranges(client):
    data = bytes(range(256)) * 8
    stored = await upload(client, "table.bin", data)
    path = f"{M}/files/download_file/{stored['file_id']}"
    status, body, got = await get(client, path, "HEAD", **ADMIN)
    assert status == 200 and body == b"" and got["Content-Length"] == str(len(data)) and got["ETag"]
    assert_416(*await get(client, path, Range="bytes=-0", **ADMIN), len(data))
    status, body, _ = await get(client, path, Range="bytes=-300", **ADMIN)
    assert status == 206 and body == data[-300:]


async def test_an_empty_file_has_no_ranges(client):
    stored = await upload(client, "empty.csv", b"")
    path = f"{M}/files/download_file/{stored['file_id']}"
    assert_416(*await get(client, path, Range="bytes=0-", **ADMIN), 0)
    status, body, got = await get(client, path, Range="bytes=-5", **ADMIN)  # satisfiable, but only as the whole
    assert status == 200 and body == b"" and got["Content-Length"] == "0"


async def test_the_openapi_document_lists_head_206_and_416(client):
    document = await (await client.get("/api/openapi.json")).json()
    operations = document["paths"]["/downloads/{export_id}/{file_name}"]
    assert {"get", "head"} <= set(operations)
    assert {"200", "206", "416", "304"} <= set(operations["get"]["responses"])
    assert "Content-Range" in operations["get"]["responses"]["416"]["headers"]
    assert {"200", "302"} <= set(operations["head"]["responses"])
    assert {p["name"] for p in operations["get"]["parameters"]} >= {"Range", "If-Range", "If-None-Match"}
