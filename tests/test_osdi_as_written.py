"""OSDI as its spec writes it: the example request bodies of the Export resource posted as they
are (a `tsv` export of a list), the HAL curie's documentation route, and the export that
expires once downloaded — whole, in ranges, in any order, after a transfer cut short."""
from __future__ import annotations

import asyncio
import csv
import io
import socket

import pyarrow.parquet as pq
import pytest

from api import fileresponse
from domain import demo
from tests.conftest import ADMIN_TOKEN, load_dataset, stored_keys
from tests.osdi import create, download, export_body, export_id, headers, poll

LIST_ID = "d91b4b2e-ae0e-4cd3-9ed7-d0ec501b0bc3"
# "Scenario: Creating a new Export (POST)", character for character (its list is our dataset)
OSDI_CREATE = b'''{
    "export_type" : "tsv",
    "name" : "People who love us",
    "_links" : {
        "osdi:resource" : {
            "href" : "https://osdi-sample-system.org/api/v1/lists/d91b4b2e-ae0e-4cd3-9ed7-d0ec501b0bc3"
        }
        
    }
 }
'''
ONCE = pytest.mark.backends("local", "s3")  # a redirecting bucket: such a file is streamed all the same


@pytest.fixture
async def osdi_list(settings, demo_file) -> str:
    await load_dataset(settings, demo_file, LIST_ID, "People who love us")
    return LIST_ID


async def test_the_osdi_create_example_as_written(client, worker, osdi_list):
    # the seed's request: its one header, no Content-Type
    response = await client.post("/api/v1/exports", data=OSDI_CREATE, headers={"OSDI-API-Token": ADMIN_TOKEN},
                                 skip_auto_headers=["Content-Type"])
    created = await response.json()
    assert response.status == 201, created
    assert created["export_type"] == "tsv" and created["name"] == "People who love us"
    assert created["_links"]["osdi:resource"]["href"].endswith(f"/api/v1/lists/{LIST_ID}")
    ready = await poll(client, ADMIN_TOKEN, export_id(created))
    assert ready["status"] == "ready", ready
    assert ready["file_name"] == f"{LIST_ID}.tsv"
    status, body, got = await download(client, ready["download_link"])
    assert status == 200 and got["Content-Type"] == "text/tab-separated-values; charset=utf-8"
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline=""), delimiter="\t"))
    assert rows[0] == demo.table().column_names and len(rows) == demo.ROWS + 1
    assert [int(r[0]) for r in rows[1:]] == demo.table().column("event_id").to_pylist()


async def test_the_osdi_collection_and_delete_examples_hold(client, osdi_list):
    """The seed's GET and DELETE scenarios: the same fields and links, the same notice."""
    created = await (await client.post("/api/v1/exports", data=OSDI_CREATE, headers=headers(ADMIN_TOKEN))).json()
    listed = await (await client.get("/api/v1/exports", headers=headers(ADMIN_TOKEN))).json()
    assert {"total_pages", "per_page", "page", "total_records", "_links", "_embedded"} <= set(listed)
    assert {"osdi:exports", "curies", "self"} <= set(listed["_links"])
    entry = listed["_embedded"]["osdi:exports"][0]
    for name in ("identifiers", "origin_system", "created_date", "modified_date", "action_date", "name", "status"):
        assert name in entry, name
    assert set(entry["_links"]) == {"self", "osdi:resource"}
    response = await client.delete(f"/api/v1/exports/{export_id(created)}", headers=headers(ADMIN_TOKEN))
    assert response.status == 200 and response.content_type == "application/hal+json"
    assert await response.json() == {"notice": "This export was successfully deleted."}


async def test_a_list_url_names_a_dataset_that_must_exist(client, demo_dataset):
    body = OSDI_CREATE.replace(LIST_ID.encode(), b"no-such-list")
    response = await client.post("/api/v1/exports", data=body, headers=headers(ADMIN_TOKEN))
    assert response.status == 400 and (await response.json())["error_code"] == "unknown_dataset"
    elsewhere = OSDI_CREATE.replace(b"/api/v1/lists/", b"/api/v1/people/")
    response = await client.post("/api/v1/exports", data=elsewhere, headers=headers(ADMIN_TOKEN))
    assert response.status == 400 and (await response.json())["error_code"] == "invalid_resource"


async def test_the_curie_names_pages_that_answer(client, demo_dataset):
    listed = await (await client.get("/api/v1/exports", headers=headers(ADMIN_TOKEN))).json()
    curie = listed["_links"]["curies"][0]
    assert curie["templated"] and curie["name"] == "osdi"
    rels = [name.split(":", 1)[1] for name in listed["_links"] if name.startswith("osdi:")]
    rels.append("export")  # the single export's relation, as the seed names it
    for rel in rels + ["resource"]:
        href = curie["href"].replace("{rel}", rel)
        path = "/" + href.split("://", 1)[1].split("/", 1)[1]
        page = await client.get(path, headers={"Accept": "text/html"})
        assert page.status == 200 and page.content_type == "text/html", rel
        assert f"<h1>osdi:{rel}</h1>" in await page.text()
        section = await client.get(path, headers={"Accept": "application/json"})
        document = await section.json()
        assert section.status == 200 and document["openapi"].startswith("3.")
        assert document["paths"], rel
    exports = await (await client.get("/docs/v1/exports", headers={"Accept": "application/json"})).json()
    assert set(exports["paths"]["/api/v1/exports"]) == {"get", "post"}
    missing = await client.get("/docs/v1/people")
    assert missing.status == 404 and "osdi:exports" in (await missing.json())["message"]


async def once_export(client, **extra) -> tuple[dict, str]:
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv",
                                                                   expire_once_downloaded=True, **extra)))
    assert ready["status"] == "ready" and ready["expire_once_downloaded"] is True, ready
    return ready, "/" + ready["download_link"].split("://", 1)[1].split("/", 1)[1]


async def status_of(client, export: str) -> dict:
    return await (await client.get(f"/api/v1/exports/{export}", headers=headers(ADMIN_TOKEN))).json()


@ONCE
async def test_a_whole_download_expires_it_and_removes_the_file(client, worker, demo_dataset, settings):
    ready, path = await once_export(client)
    head = await client.head(path)
    assert head.status == 200 and int(head.headers["Content-Length"]) == ready["file_size"]
    assert (await status_of(client, export_id(ready)))["status"] == "ready"  # a HEAD sends no byte
    response = await client.get(path, allow_redirects=False)
    assert response.status == 200 and len(await response.read()) == ready["file_size"]
    after = await status_of(client, export_id(ready))
    assert after["status"] == "expired" and "download_link" not in after and "once downloaded" in after["detail"]
    assert stored_keys(settings, f"exports/{export_id(ready)}") == []
    assert (await client.get(path)).status == 410


@ONCE
async def test_ranges_in_any_order_expire_it_with_the_last_byte(client, worker, demo_dataset, settings):
    ready, path = await once_export(client)
    size = ready["file_size"]
    whole = bytearray(size)
    for first, last in ((size - 100, size - 1), (1000, size - 101), (0, 1000)):  # the last overlaps the one before
        assert (await status_of(client, export_id(ready)))["status"] == "ready"
        response = await client.get(path, headers={"Range": f"bytes={first}-{last}"}, allow_redirects=False)
        assert response.status == 206
        whole[first:last + 1] = await response.read()
    assert len(list(csv.reader(io.StringIO(whole.decode("utf-8-sig"), newline=""), delimiter=";"))) == demo.ROWS + 1
    assert (await status_of(client, export_id(ready)))["status"] == "expired"
    assert (await client.get(path)).status == 410


async def test_several_ranges_at_once_count_too(client, worker, demo_dataset):
    ready, path = await once_export(client)
    size = ready["file_size"]
    response = await client.get(path, headers={"Range": f"bytes=0-99,100-{size // 2}"})
    assert response.status == 206 and response.content_type == "multipart/byteranges"
    await response.read()
    assert (await status_of(client, export_id(ready)))["status"] == "ready"
    response = await client.get(path, headers={"Range": f"bytes={size // 2 + 1}-"})
    assert response.status == 206 and len(await response.read()) == size - size // 2 - 1
    assert (await status_of(client, export_id(ready)))["status"] == "expired"


async def test_a_download_cut_short_can_be_resumed(client, worker, settings, tmp_path, monkeypatch):
    """The client reads a little of a large file and hangs up: the export stays ready, and a
    Range request from where it stopped gets the rest and expires it."""
    monkeypatch.setattr(fileresponse, "SENT_STEP", 64 << 10)
    path = tmp_path / "big.parquet"
    pq.write_table(demo.table(rows=150_000), path)
    await load_dataset(settings, path, "big")
    ready, link = await once_export(client, dataset_id="big")
    size = ready["file_size"]
    assert size > 16 << 20  # well past what the kernel's socket buffers take in
    received = await asyncio.to_thread(_read_then_hang_up, client.host, client.port, link, 200_000)
    await asyncio.sleep(0.5)  # the server notices the hang-up on its next write
    assert (await status_of(client, export_id(ready)))["status"] == "ready"
    response = await client.get(link, headers={"Range": f"bytes={received}-"})
    assert response.status == 206 and len(await response.read()) == size - received
    assert (await status_of(client, export_id(ready)))["status"] == "expired"


def _read_then_hang_up(host: str, port: int, path: str, wanted: int) -> int:
    """GET `path`, read the headers and about `wanted` bytes of the body, close: the body bytes read."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.connect((host, port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(8192)
        head, body = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200")
        while len(body) < wanted:
            body += sock.recv(8192)
        return len(body)


@pytest.mark.parametrize("value", ["yes", 1, None, []])
async def test_expire_once_downloaded_is_a_json_boolean(client, demo_dataset, value):
    response = await client.post("/api/v1/exports", json={**export_body("csv"), "expire_once_downloaded": value},
                                 headers=headers(ADMIN_TOKEN))
    body = await response.json()
    assert response.status == 400 and "expire_once_downloaded" in body["message"], body
