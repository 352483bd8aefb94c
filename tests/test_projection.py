"""Column projection: a format that reads few fields (OV2: a point and a name) gets a scan of
only those columns, and the export is the same as over every column — filters on other
columns still filter, counts and order stay right."""
from __future__ import annotations

import io
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from domain import demo
from domain.fields import fields_of
from domain.query import RecordQuery, Scan
from formats import REGISTRY
from tests.conftest import ADMIN_TOKEN
from tests.formats.samples import awkward_table
from tests.formats.test_ov2 import decode
from tests.osdi import create, download, export_id, poll

ROWS = 2000
V2 = "/api/explore/v2.1/catalog"
EVENTS = demo.table(rows=ROWS).to_pylist()


@pytest.fixture
def events(tmp_path) -> tuple[pads.Dataset, list]:
    """The demo events as a Parquet file of several row groups, as a dataset's data is stored."""
    path = tmp_path / "events.parquet"
    table = demo.table(rows=ROWS)
    pq.write_table(table, path, row_group_size=300)
    return pads.dataset(str(path), format="parquet"), fields_of(table.schema)


def scan_of(source, fields, **query) -> Scan:
    return RecordQuery(**query).scan(source, fields, batch_rows=128)


def rows(scan: Scan) -> list[dict]:
    return [row for batch in scan.batches() for row in batch.to_pylist()]


def ov2_bytes(scan: Scan, options: dict | None = None) -> bytes:
    fmt = REGISTRY.get("ov2")
    parsed = fmt.parse_options(options or {}, scan.fields)
    scan = scan.projected(fmt.fields_read(scan.fields, parsed))
    out = io.BytesIO()
    writer = fmt.open(out, scan.schema, scan.fields, parsed)
    for batch in scan.batches():
        writer.write(batch)
    writer.close()
    return out.getvalue()


def test_ov2_reads_its_point_and_name_only() -> None:
    fields = fields_of(awkward_table().schema)
    ov2 = REGISTRY.get("ov2")
    assert ov2.fields_read(fields, ov2.parse_options({}, fields)) == ["geo_point_2d", "title"]
    assert ov2.fields_read(fields, ov2.parse_options({"name_field": "attendance"}, fields)) == ["geo_point_2d", "attendance"]
    csv = REGISTRY.get("csv")
    assert csv.fields_read(fields, csv.parse_options({}, fields)) is None


def test_a_where_on_a_column_not_read_still_filters(events) -> None:
    source, fields = events
    where = ('city = "Lyon" AND attendance >= 20000',)
    scan = scan_of(source, fields, where=where).projected(["geo_point_2d", "title"])
    assert [f.name for f in scan.fields] == scan.schema.names == ["title", "geo_point_2d"]
    expected = [r for r in EVENTS if r["city"] == "Lyon" and r["attendance"] >= 20000]
    assert 0 < len(expected) < ROWS
    assert scan.count() == len(expected)
    assert rows(scan) == [{"title": r["title"], "geo_point_2d": r["geo_point_2d"]} for r in expected]


def test_projection_keeps_select_aliases_order_and_limit(events) -> None:
    source, fields = events
    scan = scan_of(source, fields, select="title as name, geo_point_2d as at, city", where=('category = "music"',),
                   order_by="name desc, attendance", limit=25).projected(["at"])
    assert [f.name for f in scan.fields] == ["name", "at"]  # `name` stays: the order needs it
    expected = sorted((r for r in EVENTS if r["category"] == "music"), key=lambda r: r["attendance"])
    expected = sorted(expected, key=lambda r: r["title"], reverse=True)[:25]
    assert scan.count() == 25
    assert rows(scan) == [{"name": r["title"], "at": r["geo_point_2d"]} for r in expected]


def test_what_is_not_projected(events) -> None:
    source, fields = events
    whole = scan_of(source, fields)
    assert whole.projected(None) is whole
    assert whole.projected([f.name for f in fields]) is whole
    grouped = scan_of(source, fields, select="city, count(*) as n", group_by="city")
    assert grouped.projected(["city"]) is grouped


@pytest.mark.parametrize("options", [{}, {"name_field": "starts_at", "timezone": "Europe/Paris"}, {"name_encoding": "utf-8"}])
def test_ov2_over_projected_columns_is_the_same_file(tmp_path: Path, options) -> None:
    path = tmp_path / "awkward.parquet"
    table = awkward_table()
    pq.write_table(table, path)
    source, fields = pads.dataset(str(path), format="parquet"), fields_of(table.schema)
    fmt = REGISTRY.get("ov2")
    parsed = fmt.parse_options(options, fields)
    out = io.BytesIO()
    writer = fmt.open(out, table.schema, fields, parsed)
    for batch in table.to_batches(max_chunksize=2):
        writer.write(batch)
    writer.close()
    assert ov2_bytes(scan_of(source, fields), options) == out.getvalue()


async def test_osdi_ov2_export_with_a_where_on_other_columns(client, worker, settings, tmp_path) -> None:
    from tests.conftest import load_dataset

    path = tmp_path / "events.parquet"
    pq.write_table(demo.table(rows=ROWS), path, row_group_size=500)
    await load_dataset(settings, path, "demo-events")
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(
        client, ADMIN_TOKEN, "ov2", query={"where": 'city = "Paris" AND free_entry = true'},
        options={"name_field": "city", "name_encoding": "utf-8"})))
    assert ready["status"] == "ready", ready
    expected = [r for r in EVENTS if r["city"] == "Paris" and r["free_entry"]]
    with_point = [r for r in expected if r["geo_point_2d"] is not None]
    assert ready["progress"]["records_total"] == len(expected)
    assert ready["records_count"] == len(with_point) and ready.get("records_skipped", 0) == len(expected) - len(with_point)
    _, body, _ = await download(client, ready["download_link"])
    got = decode(body, "utf-8")
    assert [name for _, _, name in got] == ["Paris"] * len(with_point)
    assert [(lon, lat) for lon, lat, _ in got] == [
        pytest.approx((r["geo_point_2d"]["lon"], r["geo_point_2d"]["lat"]), abs=1e-5) for r in with_point]


async def test_synchronous_ov2_export_ordered_by_a_column_it_does_not_write(client, demo_dataset) -> None:
    response = await client.get(f"{V2}/datasets/demo-events/exports/ov2", params={
        "where": "attendance > 40000", "order_by": "attendance desc, event_id", "limit": "40", "name_field": "title"})
    body = await response.read()
    assert response.status == 200, body[:300]
    every = demo.table().to_pylist()
    expected = sorted((r for r in every if r["attendance"] > 40000), key=lambda r: (-r["attendance"], r["event_id"]))[:40]
    expected = [r for r in expected if r["geo_point_2d"] is not None]
    assert [name for _, _, name in decode(body)] == [r["title"].encode("latin-1", "replace").decode("latin-1") for r in expected]
