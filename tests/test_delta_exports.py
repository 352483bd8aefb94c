"""Delta exports (domain/delta.py): `changes_since` names an earlier published version (the
Explore API's …/versions) or a snapshot (…/snapshots); the export holds the records added,
changed or removed since, matched on the dataset's key_fields, each with `_change`. Versions
published one after another by the management API and a real worker; files read back with
csv, json, pyarrow and GDAL (pyogrio)."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys

import orjson
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from yarl import URL

from tests.conftest import ADMIN_TOKEN
from tests.osdi import export_id
from tests.test_management import M, V2, call, new_dataset, poll_job, publish_file

V1 = b"id;name;price\n1;Alpha;1.5\n2;Beta;2\n3;Gamma;3\n"
V2_ROWS = b"id;name;price\n1;Alpha;1.5\n2;Beta;2.5\n4;Delta;4\n"  # 2 changed, 3 removed, 4 added


def points(rows: list[tuple[int, str, float, float]]) -> bytes:
    return orjson.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, 45.0]}, "properties": {"id": i, "name": n}}
        for i, n, lon, _ in rows]})


async def republish(client, uid: str, name: str, data: bytes) -> dict:
    for resource in await call(client, "GET", f"{M}/datasets/{uid}/resources/"):
        await call(client, "DELETE", f"{M}/datasets/{uid}/resources/{resource['resource_uid']}/")
    job = await publish_file(client, uid, name, data)
    assert job["status"] == "done", job
    return job


async def delta_export(client, dataset_id: str, since: str, export_type: str = "csv", **body) -> dict:
    request = {"export_type": export_type, "changes_since": since,
               "_links": {"osdi:resource": {"href": f"http://x/api/v2/catalog/datasets/{dataset_id}"}}, **body}
    created = await call(client, "POST", "/api/v1/exports", 201, json=request)
    assert created["changes_since"] == since
    for _ in range(100):
        export = await call(client, "GET", f"/api/v1/exports/{export_id(created)}?wait=5")
        if export["status"] not in ("queued", "processing"):
            return export
    raise AssertionError(export)


async def content(client, export: dict) -> bytes:
    assert export["status"] == "ready", export
    response = await client.get(URL(export["download_link"]).path_qs)
    assert response.status == 200
    return await response.read()


@pytest.fixture
async def two_versions(client, worker) -> tuple[str, str, str]:
    """A dataset keyed on id, published twice; (its uid, the first version, a snapshot of it)."""
    dataset = await new_dataset(client, "prices", key_fields=["id"])
    first = (await publish_file(client, dataset["dataset_uid"], "v1.csv", V1))["result"]["version"]
    saved = await poll_job(client, (await call(client, "PUT", f"{M}/datasets/{dataset['dataset_uid']}/save_version",
                                                json={"name": "v1"}))["job_id"])
    await republish(client, dataset["dataset_uid"], "v2.csv", V2_ROWS)
    return dataset["dataset_uid"], first, saved["result"]["version_uid"]


async def test_the_changes_since_a_published_version(client, two_versions):
    _, first, _ = two_versions
    versions = await call(client, "GET", f"{V2}/datasets/prices/versions", headers={})
    assert [v["version"] for v in versions["results"]][0] == first and versions["results"][-1]["current"] is True
    export = await delta_export(client, "prices", first)
    rows = list(csv.DictReader(io.StringIO((await content(client, export)).decode("utf-8-sig")), delimiter=";"))
    assert sorted((r["id"], r["_change"], r["name"], r["price"]) for r in rows) == [
        ("2", "changed", "Beta", "2.5"), ("3", "removed", "", ""), ("4", "added", "Delta", "4")]

    as_json = await delta_export(client, "prices", first, "json", query={"where": "_change != 'removed'"})
    records = json.loads(await content(client, as_json))
    assert sorted((r["id"], r["_change"], r["price"]) for r in records) == [(2, "changed", 2.5), (4, "added", 4.0)]
    assert all(isinstance(r["id"], int) and isinstance(r["price"], float) for r in records)


async def test_the_changes_since_a_snapshot_in_parquet(client, two_versions, tmp_path):
    _, _, snapshot = two_versions
    export = await delta_export(client, "prices", snapshot, "parquet")
    path = tmp_path / "delta.parquet"
    path.write_bytes(await content(client, export))
    table = pq.read_table(path).sort_by("id")
    assert table.column("id").to_pylist() == [2, 3, 4]
    assert table.column("_change").to_pylist() == ["changed", "removed", "added"]
    assert table.column("name").to_pylist() == ["Beta", None, "Delta"] and str(table.schema.field("price").type) == "double"


async def test_a_geographic_delta(client, worker, tmp_path):
    dataset = await new_dataset(client, "places", key_fields=["id"])
    first = (await publish_file(client, dataset["dataset_uid"], "v1.geojson",
                                points([(1, "Paris", 2.35, 0), (2, "Lyon", 4.83, 0)])))["result"]["version"]
    await republish(client, dataset["dataset_uid"], "v2.geojson", points([(2, "Lyon", 5.0, 0), (3, "Nice", 7.26, 0)]))
    export = await delta_export(client, "places", first, "geojson")
    path = tmp_path / "delta.geojson"
    path.write_bytes(await content(client, export))
    meta, table = pyogrio.read_arrow(path)
    table = table.sort_by("id")
    assert table.column("_change").to_pylist() == ["removed", "changed", "added"]
    assert table.column("id").to_pylist() == [1, 2, 3] and table.column("name").to_pylist() == [None, "Lyon", "Nice"]
    geometries = shapely.from_wkb(table.column(meta["geometry_name"] or "wkb_geometry").to_pylist())
    assert geometries[0] is None and [round(g.x, 2) for g in geometries[1:]] == [5.0, 7.26]


async def test_refusals_name_the_field(client, worker, two_versions):
    body = await call(client, "POST", "/api/v1/exports", 400, json={
        "export_type": "csv", "changes_since": "20200101T000000-abcdef",
        "_links": {"osdi:resource": {"href": "http://x/api/v2/catalog/datasets/prices"}}})
    assert "no version or snapshot" in body["message"] and body.get("field") in (None, "changes_since")
    plain = await new_dataset(client, "unkeyed")
    version = (await publish_file(client, plain["dataset_uid"], "v1.csv", V1))["result"]["version"]
    body = await call(client, "POST", "/api/v1/exports", 400, json={
        "export_type": "csv", "changes_since": version,
        "_links": {"osdi:resource": {"href": "http://x/api/v2/catalog/datasets/unkeyed"}}})
    assert "has no key fields" in body["message"] and "key_fields" in body["message"]
    body = await call(client, "POST", "/api/v1/exports", 400, json={
        "export_type": "csv", "changes_since": "x" * 101,
        "_links": {"osdi:resource": {"href": "http://x/api/v2/catalog/datasets/prices"}}})
    assert "changes_since" in body["message"]


async def test_the_command_line_asks_for_a_delta(client, two_versions, tmp_path):
    """`exportd export prices --changes-since V -o FILE`, against the test server."""
    _, first, _ = two_versions
    env = {**os.environ, "EXPORTD_URL": str(client.make_url("")).rstrip("/"), "EXPORTD_TOKEN": ADMIN_TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "export", "prices", "-f", "csv", "--changes-since", first, "-o",
        str(tmp_path / "d.csv"), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "d.csv").read_text(encoding="utf-8-sig")), delimiter=";"))
    assert sorted(r["_change"] for r in rows) == ["added", "changed", "removed"]
