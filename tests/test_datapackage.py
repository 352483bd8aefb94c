"""The `datapackage` option (formats/datapackage.py): an export of any format becomes a zip of
its file and a Frictionless datapackage.json — the dataset's metadata, the table schema, the
query, the file's size and SHA-256 — validated with the frictionless library (for CSV, row by
row against the schema), through a real worker and through the streamed Explore export."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile

import frictionless
import pytest
from yarl import URL

from formats import REGISTRY
from tests.conftest import ADMIN_TOKEN
from tests.osdi import export_id, headers
from tests.test_management import call, new_dataset, publish_file

V2 = "/api/v2/catalog/datasets/demo-events"
SMALL = "http://x/api/v2/catalog/datasets/demo-events/records?where=event_id<=40"


async def ready_package(client, export_type: str, **options) -> zipfile.ZipFile:
    body = {"export_type": export_type, "options": {"datapackage": True, **options},
            "_links": {"osdi:resource": {"href": SMALL}}}
    created = await (await client.post("/api/v1/exports", json=body, headers=headers(ADMIN_TOKEN))).json()
    assert created.get("status") in ("queued", "ready"), created
    for _ in range(100):
        export = await (await client.get(f"/api/v1/exports/{export_id(created)}?wait=5", headers=headers(ADMIN_TOKEN))).json()
        if export["status"] not in ("queued", "processing"):
            break
    assert export["status"] == "ready", export
    assert export["file_name"].endswith(".zip")
    response = await client.get(URL(export["download_link"]).path_qs)
    assert response.status == 200 and response.headers["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(await response.read()))


def validated(archive: zipfile.ZipFile, tmp_path) -> dict:
    archive.extractall(tmp_path)
    descriptor = json.loads((tmp_path / "datapackage.json").read_text())
    # frictionless reads Parquet whole through pandas, which counts no bytes: the size and hash
    # are checked below for every format
    skip = ["byte-count", "hash-count"] if descriptor["resources"][0]["format"] == "parquet" else []
    report = frictionless.validate(str(tmp_path / "datapackage.json"), checklist=frictionless.Checklist(skip_errors=skip))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    (resource,) = descriptor["resources"]
    data = (tmp_path / resource["path"]).read_bytes()
    assert resource["bytes"] == len(data) and resource["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    return descriptor


async def test_a_csv_package_validates_row_by_row(client, demo_dataset, worker, tmp_path):
    descriptor = validated(await ready_package(client, "csv"), tmp_path)
    (resource,) = descriptor["resources"]
    assert resource["path"] == "demo-events.csv" and resource["profile"] == "tabular-data-resource"
    types = {f["name"]: f["type"] for f in resource["schema"]["fields"]}
    assert types == {"event_id": "integer", "title": "string", "description": "string", "category": "string",
                     "city": "string", "attendance": "integer", "price": "number", "free_entry": "boolean",
                     "event_date": "date", "starts_at": "datetime", "ends_at": "datetime", "geo_point_2d": "string"}
    assert descriptor["title"] and descriptor["version"]
    assert descriptor["exportd"]["query"]["where"] == ["event_id<=40"]
    assert descriptor["sources"][0]["path"].endswith("/api/v2/catalog/datasets/demo-events")
    package = frictionless.Package(str(tmp_path / "datapackage.json"))
    read = package.get_resource("demo-events").read_rows()
    assert len(read) == 40 and [r["event_id"] for r in read[:3]] == [1, 2, 3]
    records = (await (await client.get(f"{V2}/records", params={"where": "event_id<=40", "order_by": "event_id",
                                                                 "limit": "40"})).json())["results"]
    assert [float(r["price"]) if r["price"] is not None else None for r in read] == [r["price"] for r in records]
    assert [r["free_entry"] for r in read] == [r["free_entry"] for r in records]


# frictionless opens a zip resource (shp) as an archive and leaves it unclosed: its warning, not ours
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("export_type", [f.name for f in REGISTRY if f.name != "csv"])
async def test_every_format_packs_with_its_hash(client, demo_dataset, worker, tmp_path, export_type):
    archive = await ready_package(client, export_type)
    assert sorted(archive.namelist()) == sorted(["datapackage.json", REGISTRY.get(export_type).filename("demo-events", {})])
    descriptor = validated(archive, tmp_path)
    assert descriptor["resources"][0]["format"] == export_type


async def test_the_datasets_metadata_goes_into_the_package(client, worker, tmp_path):
    dataset = await new_dataset(client, "shops", license="ODbL", publisher="City of Lyon", keywords=["shops", "retail"],
                                description="Shops of the city")
    await publish_file(client, dataset["dataset_uid"], "shops.csv", b"id;name\n1;Alpha\n2;Beta\n")
    body = {"export_type": "json", "options": {"datapackage": True},
            "_links": {"osdi:resource": {"href": "http://x/api/v2/catalog/datasets/shops"}}}
    created = await call(client, "POST", "/api/v1/exports", 201, json=body)
    for _ in range(100):
        export = await call(client, "GET", f"/api/v1/exports/{export_id(created)}?wait=5")
        if export["status"] == "ready":
            break
    archive = zipfile.ZipFile(io.BytesIO(await (await client.get(URL(export["download_link"]).path_qs)).read()))
    descriptor = validated(archive, tmp_path)
    assert descriptor["licenses"] == [{"name": "odbl", "title": "ODbL"}]
    assert descriptor["contributors"] == [{"title": "City of Lyon", "role": "publisher"}]
    assert descriptor["keywords"] == ["shops", "retail"] and descriptor["description"] == "Shops of the city"
    assert descriptor["version"] and descriptor["name"] == "shops"


async def test_a_streamed_export_packs_too(client, demo_dataset, tmp_path):
    response = await client.get(f"{V2}/exports/csv", params={"datapackage": "true", "where": "event_id<=25"})
    assert response.status == 200 and response.headers["Content-Type"] == "application/zip"
    assert "demo-events.csv.zip" in response.headers["Content-Disposition"]
    descriptor = validated(zipfile.ZipFile(io.BytesIO(await response.read())), tmp_path)
    assert descriptor["exportd"]["query"]["where"] == ["event_id<=25"]
