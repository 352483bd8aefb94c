"""The catalog level of the Explore API: datasets queried with select, where, refine, exclude,
group_by and order_by over their metadata (checked as records are: an unknown field is a 400
ODSQLError), the catalog's facets, and its exports as csv, json and xlsx read back by other
readers; restricted datasets stay out of all of them for anyone but an administrator."""
from __future__ import annotations

import csv
import io

import openpyxl
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from domain.datasets import DatasetRepo
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.test_explore import get_json

V21 = "/api/explore/v2.1/catalog"
ADMIN = {"Authorization": f"Apikey {ADMIN_TOKEN}"}
CATALOG = {  # dataset id → (records, publisher, keywords, theme, visibility)
    "bikes": (3, "City of Lyon", ["mobility", "bikes"], ["Transport"], "domain"),
    "buses": (5, "City of Lyon", ["mobility"], ["Transport"], "domain"),
    "trees": (2, "Parks office", ["nature"], ["Environment"], "domain"),
    "budget": (4, None, [], [], "restricted"),
}
PUBLIC = sorted(d for d, v in CATALOG.items() if v[4] == "domain")


@pytest.fixture
async def catalog(settings, state, tmp_path) -> None:
    repo = DatasetRepo(state)
    for dataset_id, (count, publisher, keywords, theme, visibility) in CATALOG.items():
        path = tmp_path / f"{dataset_id}.parquet"
        pq.write_table(pa.table({"n": pa.array(range(count), pa.int64())}), path)
        await load_dataset(settings, path, dataset_id, title=dataset_id.title())
        dataset = await repo.get(dataset_id)
        dataset.visibility = visibility
        dataset.metadata = {"keywords": keywords, "theme": theme, **({"publisher": publisher} if publisher else {})}
        await repo.save(dataset)


@pytest.mark.parametrize("query", ["select=nosuchfield", "where=nosuchfield = 1", "order_by=nosuchfield",
                                   "group_by=nosuchfield", "select=count(", "refine=nosuchfield:x"])
async def test_unknown_fields_and_bad_odsql_are_400(client, catalog, query):
    body = await get_json(client, f"{V21}/datasets?{query}", status=400)
    assert body["error_code"] == "ODSQLError" and ("nosuchfield" in body["message"] or "(" in query), body


async def test_select_where_and_order_by(client, catalog):
    body = await get_json(client, f"{V21}/datasets", params={
        "select": "dataset_id, records_count as n", "where": 'publisher = "City of Lyon"', "order_by": "n desc"})
    assert body["total_count"] == 2
    assert body["results"] == [{"dataset_id": "buses", "n": 5}, {"dataset_id": "bikes", "n": 3}]
    full = await get_json(client, f"{V21}/datasets", params={"where": "records_count > 2", "order_by": "title desc"})
    assert [d["dataset_id"] for d in full["results"]] == ["buses", "bikes"] and full["results"][0]["metas"]
    assert full["total_count"] == 2


async def test_refine_and_exclude_on_lists_and_text(client, catalog):
    body = await get_json(client, f"{V21}/datasets", params={"refine": "keyword:mobility", "exclude": "keyword:bikes"})
    assert [d["dataset_id"] for d in body["results"]] == ["buses"] and body["total_count"] == 1
    body = await get_json(client, f"{V21}/datasets", params={"refine": "publisher:Parks office"})
    assert [d["dataset_id"] for d in body["results"]] == ["trees"]


async def test_group_by_counts_groups(client, catalog):
    body = await get_json(client, f"{V21}/datasets", params={
        "select": "publisher, count(*) as datasets, sum(records_count) as records", "group_by": "publisher", "limit": "1"})
    assert body["total_count"] == 2  # the restricted dataset, without a publisher, is not seen
    assert body["results"] == [{"publisher": "City of Lyon", "datasets": 2, "records": 8}]
    assert any(link["rel"] == "next" for link in body["links"])


async def test_restricted_datasets_only_for_administrators(client, catalog):
    anonymous = await get_json(client, f"{V21}/datasets", params={"select": "dataset_id"})
    assert [r["dataset_id"] for r in anonymous["results"]] == PUBLIC
    admin = await get_json(client, f"{V21}/datasets", params={"select": "dataset_id"}, headers=ADMIN)
    assert sorted(r["dataset_id"] for r in admin["results"]) == sorted(CATALOG)


async def test_catalog_facets(client, catalog):
    body = await get_json(client, f"{V21}/facets")
    facets = {f["name"]: {v["name"]: v["count"] for v in f["facets"]} for f in body["facets"]}
    assert facets["keyword"] == {"mobility": 2, "bikes": 1, "nature": 1}
    assert facets["theme"] == {"Transport": 2, "Environment": 1}
    assert facets["publisher"] == {"City of Lyon": 2, "Parks office": 1}
    assert facets["features"] == {"analyze": 3}
    keyword = next(f for f in body["facets"] if f["name"] == "keyword")
    assert [v["name"] for v in keyword["facets"]] == ["mobility", "bikes", "nature"]  # most frequent first
    some = await get_json(client, f"{V21}/facets", params={"facet": "keyword", "where": "records_count >= 3"})
    assert [f["name"] for f in some["facets"]] == ["keyword"]
    assert {v["name"]: v["count"] for v in some["facets"][0]["facets"]} == {"mobility": 2, "bikes": 1}
    admin = await get_json(client, f"{V21}/facets", params={"facet": "features"}, headers=ADMIN)
    assert admin["facets"][0]["facets"][0]["count"] == 4
    for bad, code in (({"facet": "colour"}, "InvalidParameter"), ({"where": "nosuchfield = 2"}, "ODSQLError")):
        error = await get_json(client, f"{V21}/facets", params=bad, status=400)
        assert error["error_code"] == code, error


async def test_catalog_exports(client, catalog):
    response = await client.get(f"{V21}/exports/csv", params={"order_by": "dataset_id", "delimiter": ","})
    assert response.status == 200 and response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="catalog.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode("utf-8-sig"), newline="")))
    assert [r["dataset_id"] for r in rows] == PUBLIC
    assert {r["dataset_id"]: r["keyword"] for r in rows} == {"bikes": "mobility, bikes", "buses": "mobility", "trees": "nature"}
    assert [int(r["records_count"]) for r in rows] == [CATALOG[d][0] for d in PUBLIC]

    response = await client.get(f"{V21}/exports/json", params={"select": "dataset_id, title", "where": "records_count > 2",
                                                               "order_by": "dataset_id"})
    assert orjson.loads(await response.read()) == [{"dataset_id": "bikes", "title": "Bikes"}, {"dataset_id": "buses", "title": "Buses"}]

    response = await client.get(f"{V21}/exports/xlsx", headers=ADMIN, params={"order_by": "dataset_id"})
    book = openpyxl.load_workbook(io.BytesIO(await response.read()), read_only=True)
    try:
        sheet = list(book.worksheets[0].iter_rows(values_only=True))
    finally:
        book.close()
    assert sheet[0][0] == "dataset_id" and [r[0] for r in sheet[1:]] == sorted(CATALOG)

    for path, named in ((f"{V21}/exports/rdf", "rdf"), (f"{V21}/exports/geojson", "geojson"),
                        (f"{V21}/exports/csv?delimitr=,", "delimitr"), (f"{V21}/exports/csv?select=nosuchfield", "nosuchfield")):
        error = await get_json(client, path, status=400)
        assert named in error["message"], error
