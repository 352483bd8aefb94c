"""The Explore API v2 over our datasets: catalog, records, ODSQL through HTTP, aggregates,
facets, synchronous exports, the portal's download URL, and both API prefixes."""
from __future__ import annotations

import csv
import io
from collections import Counter
from urllib.parse import urlparse

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from domain import demo
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.osdi import download, export_id, headers, poll

V2 = "/api/v2/catalog"
V21 = "/api/explore/v2.1/catalog"
ROWS = demo.table().to_pylist()


async def get_json(client, path, status=200, **kwargs):
    response = await client.get(path, **kwargs)
    body = await response.json()
    assert response.status == status, body
    return body


async def test_catalog_lists_datasets_with_links(client, demo_dataset, settings, tmp_path):
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"name": ["x"]}), other)
    await load_dataset(settings, other, "another-one", title="Another")
    body = await get_json(client, f"{V2}/datasets?limit=1")
    assert body["total_count"] == 2
    assert [d["dataset_id"] for d in body["results"]] == ["another-one"]
    rels = {link["rel"]: link["href"] for link in body["links"]}
    assert {"self", "first", "next", "last"} <= set(rels) and "prev" not in rels
    assert "offset=1" in rels["next"] and rels["next"].startswith("http")
    next_page = urlparse(rels["next"])
    second = await get_json(client, f"{next_page.path}?{next_page.query}")
    assert [d["dataset_id"] for d in second["results"]] == ["demo-events"]
    filtered = await get_json(client, f"{V2}/datasets?where=records_count > 100")
    assert [d["dataset_id"] for d in filtered["results"]] == ["demo-events"]


async def test_both_prefixes_and_trailing_slashes_answer_the_same(client, demo_dataset):
    bodies = []
    for prefix in (V2, V21):
        for slash in ("", "/"):
            response = await client.get(f"{prefix}/datasets/demo-events/records{slash}?limit=3&order_by=event_id desc",
                                        allow_redirects=False)
            assert response.status == 200
            bodies.append((await response.json())["results"])
    assert all(b == bodies[0] for b in bodies)
    assert [r["event_id"] for r in bodies[0]] == [demo.ROWS, demo.ROWS - 1, demo.ROWS - 2]


async def test_one_dataset_describes_its_fields(client, demo_dataset):
    body = await get_json(client, f"{V21}/datasets/demo-events")
    assert body["dataset_id"] == "demo-events" and body["dataset_uid"].startswith("da_")
    assert body["metas"]["default"]["records_count"] == demo.ROWS
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["starts_at"]["type"] == "datetime" and fields["starts_at"]["label"] == "Starts at"
    assert fields["geo_point_2d"]["type"] == "geo_point_2d"
    rels = {link["rel"] for link in body["links"]}
    assert {"records", "exports", "attachments", "files", "snapshots"} <= rels
    missing = await get_json(client, f"{V21}/datasets/nope", status=404)
    assert missing["error_code"] and missing["error"] == missing["message"]


async def test_records_with_where_select_order_and_paging(client, demo_dataset):
    where = 'city = "Paris" AND attendance >= 25000'
    body = await get_json(client, f"{V2}/datasets/demo-events/records", params={
        "where": where, "select": "event_id, attendance as people", "order_by": "attendance desc", "limit": "5", "offset": "2"})
    expected = sorted((r for r in ROWS if r["city"] == "Paris" and r["attendance"] >= 25000),
                      key=lambda r: -r["attendance"])
    assert body["total_count"] == len(expected)
    assert [r["people"] for r in body["results"]] == [r["attendance"] for r in expected[2:7]]
    assert set(body["results"][0]) == {"event_id", "people"}


async def test_records_render_values_as_the_json_export(client, demo_dataset):
    body = await get_json(client, f"{V2}/datasets/demo-events/records?limit=1&timezone=Europe/Paris")
    record = body["results"][0]
    first = ROWS[0]
    assert record["title"] == first["title"] and record["geo_point_2d"] == first["geo_point_2d"]
    assert record["event_date"] == first["event_date"].isoformat()
    assert record["starts_at"].endswith(("+01:00", "+02:00"))


@pytest.mark.parametrize("query, code", [
    ("limit=101", "InvalidParameter"), ("limit=-1", "InvalidParameter"), ("offset=9995&limit=10", "InvalidParameter"),
    ("limit=ten", "InvalidParameter"), ("where=city = ", "ODSQLError"), ("where=nosuchfield = 1", "ODSQLError"),
    ("select=count(", "ODSQLError"), ("order_by=nosuch desc", "ODSQLError"), ("timezone=Nowhere/Land", "InvalidParameter"),
])
async def test_bad_record_queries_are_400(client, demo_dataset, query, code):
    body = await get_json(client, f"{V2}/datasets/demo-events/records?{query}", status=400)
    assert body["error_code"] == code and body["message"] == body["error"]


async def test_odsql_errors_point_at_the_position(client, demo_dataset):
    body = await get_json(client, f"{V2}/datasets/demo-events/records", params={"where": 'city = "Paris" AND AND x'}, status=400)
    assert body["error_code"] == "ODSQLError"
    assert "position" in body["message"]


async def test_one_record_by_id(client, demo_dataset):
    body = await get_json(client, f"{V2}/datasets/demo-events/records/41")
    assert body["event_id"] == ROWS[41]["event_id"] and body["record_id"] == "41"
    await get_json(client, f"{V2}/datasets/demo-events/records/{demo.ROWS}", status=404)
    await get_json(client, f"{V2}/datasets/demo-events/records/abc", status=404)


async def test_aggregates_group_by(client, demo_dataset):
    body = await get_json(client, f"{V21}/datasets/demo-events/aggregates", params={
        "select": "city, count(*) as n, sum(attendance) as people, max(price) as top", "group_by": "city", "order_by": "city"})
    expected = Counter(r["city"] for r in ROWS)
    assert [(r["city"], r["n"]) for r in body["results"]] == sorted(expected.items())
    paris = next(r for r in body["results"] if r["city"] == "Paris")
    assert paris["people"] == sum(r["attendance"] for r in ROWS if r["city"] == "Paris")
    assert paris["top"] == max(r["price"] for r in ROWS if r["city"] == "Paris")
    by_year = await get_json(client, f"{V21}/datasets/demo-events/aggregates", params={
        "select": "year(event_date) as y, count(*) as n", "group_by": "year(event_date) as y", "order_by": "y"})
    assert {r["y"]: r["n"] for r in by_year["results"]} == dict(Counter(r["event_date"].year for r in ROWS))


async def test_facets_count_values(client, demo_dataset):
    body = await get_json(client, f"{V2}/datasets/demo-events/facets?facet=category&where=free_entry = true")
    [facet] = body["facets"]
    expected = Counter(r["category"] for r in ROWS if r["free_entry"])
    assert {f["name"]: f["count"] for f in facet["facets"]} == dict(expected)
    counts = [f["count"] for f in facet["facets"]]
    assert counts == sorted(counts, reverse=True)


async def test_refine_and_exclude(client, demo_dataset):
    body = await get_json(client, f"{V2}/datasets/demo-events/records?refine=city:Lyon&exclude=category:music&limit=0")
    assert body["total_count"] == sum(1 for r in ROWS if r["city"] == "Lyon" and r["category"] != "music")
    body = await get_json(client, f"{V2}/datasets/demo-events/records?refine=event_date:2025&limit=0")
    assert body["total_count"] == sum(1 for r in ROWS if r["event_date"].year == 2025)


async def test_restricted_datasets_are_hidden(client, demo_dataset, state, user_token):
    from domain.datasets import DatasetRepo

    repo = DatasetRepo(state)
    dataset = await repo.get("demo-events")
    dataset.visibility = "restricted"
    await repo.save(dataset)
    await get_json(client, f"{V2}/datasets/demo-events", status=404)
    await get_json(client, f"{V2}/datasets/demo-events/records", status=404)
    assert (await get_json(client, f"{V2}/datasets"))["total_count"] == 0
    reader = await user_token("reader")
    await get_json(client, f"{V2}/datasets/demo-events", status=404, headers={"Authorization": f"Apikey {reader}"})
    await get_json(client, f"{V2}/datasets/demo-events?apikey={ADMIN_TOKEN}")
    await get_json(client, f"{V2}/datasets/demo-events", headers={"Authorization": f"ApiKey {ADMIN_TOKEN}"})
    await get_json(client, f"{V2}/datasets?apikey=wrong", status=401)


async def test_exports_lists_the_formats_that_fit(client, demo_dataset, settings, tmp_path):
    body = await get_json(client, f"{V2}/datasets/demo-events/exports")
    rels = [link["rel"] for link in body["links"] if link["rel"] != "self"]
    assert rels[:3] == ["csv", "json", "jsonl"] and {"geojson", "shp", "ical", "ov2", "gpx"} <= set(rels)
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"name": ["a"], "n": [1]}), plain)
    await load_dataset(settings, plain, "plain")
    rels = {link["rel"] for link in (await get_json(client, f"{V2}/datasets/plain/exports"))["links"]}
    assert {"csv", "json", "xlsx", "parquet"} <= rels and not rels & {"geojson", "shp", "ical", "ov2", "kml", "gpx"}


@pytest.mark.backends("local", "s3")
async def test_synchronous_csv_export_matches_the_records_endpoint(client, demo_dataset):
    params = {"where": 'category IN ("music", "talk") AND free_entry = false', "select": "event_id, title, starts_at",
              "order_by": "event_id", "delimiter": ","}
    response = await client.get(f"{V2}/datasets/demo-events/exports/csv", params=params)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="demo-events.csv"' in response.headers["Content-Disposition"]
    text = (await response.read()).decode("utf-8-sig")
    exported = list(csv.DictReader(io.StringIO(text, newline="")))
    expected = [r for r in ROWS if r["category"] in ("music", "talk") and not r["free_entry"]]
    assert [int(r["event_id"]) for r in exported] == [r["event_id"] for r in expected]
    assert [r["title"] for r in exported] == [r["title"] for r in expected]
    page = await get_json(client, f"{V2}/datasets/demo-events/records", params={
        k: v for k, v in params.items() if k != "delimiter"} | {"limit": "100"})
    assert [r["event_id"] for r in page["results"]] == [int(r["event_id"]) for r in exported[:100]]


@pytest.mark.parametrize("name", ["json", "geojson", "xlsx", "shp", "parquet"])
async def test_synchronous_exports_of_each_kind(client, demo_dataset, name):
    response = await client.get(f"{V21}/datasets/demo-events/exports/{name}?limit=50&order_by=event_id")
    body = await response.read()
    assert response.status == 200, body[:300]
    if name == "json":
        assert [r["event_id"] for r in orjson.loads(body)] == list(range(1, 51))
    elif name == "geojson":
        assert len(orjson.loads(body)["features"]) == 50
    elif name == "parquet":
        assert pq.read_table(io.BytesIO(body)).column("event_id").to_pylist() == list(range(1, 51))
    else:
        assert body[:2] == b"PK"  # a zip (xlsx, shapefile)


async def test_synchronous_export_errors_are_400(client, demo_dataset):
    for query in ("colour=red", "where=city ==", "delimiter=x", "timezone=Mars"):
        body = await get_json(client, f"{V2}/datasets/demo-events/exports/csv?{query}", status=400)
        assert body["error_code"] and body["message"]
    await get_json(client, f"{V2}/datasets/demo-events/exports/docx", status=400)


async def test_the_portal_download_url(client, demo_dataset):
    response = await client.get("/explore/dataset/demo-events/download/", params={
        "format": "csv", "csv_separator": ";", "use_labels_for_header": "True", "where": 'city = "Lille"'})
    assert response.status == 200
    text = (await response.read()).decode("utf-8-sig")
    header, *lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert header[:2] == ["Event ID", "Title"]
    assert len(lines) == sum(1 for r in ROWS if r["city"] == "Lille")


@pytest.mark.backends("local", "s3")
async def test_osdi_export_of_a_records_query(client, worker, demo_dataset):
    href = f'http://x{V2}/datasets/demo-events/records?where=city%3D%22Nantes%22&select=event_id,city&order_by=event_id%20desc&limit=30'
    response = await client.post("/api/v1/exports", headers=headers(ADMIN_TOKEN), json={
        "export_type": "json", "_links": {"osdi:resource": {"href": href}}})
    created = await response.json()
    assert response.status == 201, created
    ready = await poll(client, ADMIN_TOKEN, export_id(created))
    assert ready["status"] == "ready", ready
    _, body, _ = await download(client, ready["download_link"])
    expected = sorted((r["event_id"] for r in ROWS if r["city"] == "Nantes"), reverse=True)[:30]
    assert orjson.loads(body) == [{"event_id": i, "city": "Nantes"} for i in expected]
    assert ready["records_count"] == 30 and ready["progress"]["records_total"] == 30
