"""The whole OSDI flow on a real Redis and a real arq worker: POST → poll → ready → download
→ parse back with an independent reader → compare every record with the dataset; with files
in the data directory and in a bucket."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest

from domain import demo
from tests.osdi import create, download, export_id, headers, poll
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.backends("local", "s3")


def dataset_rows() -> list[dict]:
    return demo.table().to_pylist()


async def test_csv_export_round_trip(client, worker, demo_dataset):
    created = await create(client, ADMIN_TOKEN, "csv")
    assert created["status"] == "queued"
    assert created["export_type"] == "csv"
    ready = await poll(client, ADMIN_TOKEN, export_id(created))
    assert ready["status"] == "ready", ready
    assert ready["records_count"] == demo.ROWS
    assert ready["progress"] == {"records_done": demo.ROWS, "records_total": demo.ROWS}
    assert ready["processed_date"].endswith("Z")

    status, body, response_headers = await download(client, ready["download_link"])
    assert status == 200
    assert response_headers["Content-Type"] == "text/csv; charset=utf-8"
    assert int(response_headers["Content-Length"]) == len(body) == ready["file_size"]
    assert 'filename="demo-events.csv"' in response_headers["Content-Disposition"]
    assert body.startswith(b"\xef\xbb\xbf")

    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=";")
    rows = list(reader)
    expected = dataset_rows()
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected):
        assert got["event_id"] == str(want["event_id"])
        assert got["title"] == want["title"]
        assert got["description"] == (want["description"] or "")
        assert got["category"] == want["category"] and got["city"] == want["city"]
        assert int(got["attendance"]) == want["attendance"]
        assert float(got["price"]) == want["price"]
        assert got["free_entry"] == ("true" if want["free_entry"] else "false")
        assert date.fromisoformat(got["event_date"]) == want["event_date"]
        assert datetime.fromisoformat(got["starts_at"]) == want["starts_at"]
        assert datetime.fromisoformat(got["ends_at"]) == want["ends_at"]
        if want["geo_point_2d"] is None:
            assert got["geo_point_2d"] == ""
        else:
            lat, lon = (float(x) for x in got["geo_point_2d"].split(","))
            assert (lon, lat) == pytest.approx((want["geo_point_2d"]["lon"], want["geo_point_2d"]["lat"]), abs=1e-9)


async def test_json_export_round_trip_in_a_timezone(client, worker, demo_dataset):
    created = await create(client, ADMIN_TOKEN, "json", options={"timezone": "Europe/Paris"})
    ready = await poll(client, ADMIN_TOKEN, export_id(created))
    assert ready["status"] == "ready", ready
    status, body, response_headers = await download(client, ready["download_link"])
    assert status == 200 and response_headers["Content-Type"] == "application/json"
    records = orjson.loads(body)
    expected = dataset_rows()
    assert len(records) == len(expected)
    paris = ZoneInfo("Europe/Paris")
    for got, want in zip(records, expected):
        assert set(got) == set(want)
        for name in ("event_id", "title", "description", "category", "city", "attendance", "price", "free_entry", "geo_point_2d"):
            assert got[name] == want[name], name
        assert got["event_date"] == want["event_date"].isoformat()
        starts = datetime.fromisoformat(got["starts_at"])
        assert starts == want["starts_at"]
        assert starts.utcoffset() == want["starts_at"].astimezone(paris).utcoffset()


async def test_select_exports_only_the_chosen_fields(client, worker, demo_dataset):
    created = await create(client, ADMIN_TOKEN, "jsonl", query={"select": ["event_id", "city"]})
    ready = await poll(client, ADMIN_TOKEN, export_id(created))
    _, body, _ = await download(client, ready["download_link"])
    lines = body.splitlines()
    assert len(lines) == demo.ROWS
    assert orjson.loads(lines[0]) == {"event_id": 1, "city": dataset_rows()[0]["city"]}


@pytest.mark.backends("local", "s3", "s3-stream")
async def test_range_requests_serve_parts_of_the_file(client, worker, demo_dataset):
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
    _, whole, _ = await download(client, ready["download_link"])
    status, part, part_headers = await download(client, ready["download_link"], headers={"Range": "bytes=10-29"})
    assert status == 206
    assert part == whole[10:30]
    assert part_headers["Content-Range"] == f"bytes 10-29/{len(whole)}"


async def test_compressed_export_is_gzip(client, worker, demo_dataset):
    import gzip

    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv", options={"compressed": True})))
    status, body, response_headers = await download(client, ready["download_link"])
    assert status == 200 and ready["file_name"] == "demo-events.csv.gz"
    assert response_headers["Content-Type"] == "application/gzip"
    assert len(gzip.decompress(body).decode("utf-8-sig").splitlines()) > demo.ROWS


async def test_a_user_polls_their_own_export(client, worker, demo_dataset, user_token):
    token = await user_token("alice")
    created = await create(client, token, "json")
    response = await client.get(f"/api/v1/exports/{export_id(created)}", headers=headers(token))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/hal+json")
    assert (await poll(client, token, export_id(created)))["status"] == "ready"
