"""Exports prepared at publish (domain/prepared.py): the formats a dataset's
`exports_on_publish` metadata lists, else EXPORTD_EXPORTS_ON_PUBLISH, are exported by the
worker after the version is published, at the lowest priority, and a visitor's matching POST
is then born ready, sharing the prepared file."""
from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from tests.test_management import CSV, GEOJSON, M, call, new_dataset, publish_file

PRICES = b"id;name;price\n1;Alpha;1.5\n2;Beta;2\n"  # no coordinates: no geometry


async def wait_ready(client, ids: list[str]) -> list[dict]:
    found = []
    for ident in ids:
        for _ in range(100):
            export = await call(client, "GET", f"/api/v1/exports/{ident}?wait=5")
            if export["status"] not in ("queued", "processing"):
                break
        found.append(export)
    return found


async def test_a_published_dataset_prepares_its_formats_and_a_visitor_shares_them(client, worker):
    dataset = await new_dataset(client, "shops", exports_on_publish=["csv", "geojson", "xlsx"])
    assert dataset["metadata"]["default"]["exports_on_publish"] == {"value": ["csv", "geojson", "xlsx"]}
    job = await publish_file(client, dataset["dataset_uid"], "shops.geojson", GEOJSON)
    assert job["status"] == "done", job
    prepared = job["result"]["exports_prepared"]
    assert len(prepared) == 3
    exports = await wait_ready(client, prepared)
    assert [(e["status"], e["owner"], e["export_type"], e["records_count"]) for e in exports] == [
        ("ready", "system:prepared", "csv", 2), ("ready", "system:prepared", "geojson", 2),
        ("ready", "system:prepared", "xlsx", 2)]

    # a visitor without a token asks for the same file: it is there at once
    body = {"export_type": "geojson", "_links": {"osdi:resource": {"href": "http://x/api/v2/catalog/datasets/shops"}}}
    response = await client.post("/api/v1/exports", json=body)
    visitor = await response.json()
    assert response.status == 201 and visitor["status"] == "ready" and visitor["file_size"] == exports[1]["file_size"]
    other = await client.post("/api/v1/exports", json={**body, "query": {"where": "n = 1"}})
    assert (await other.json())["status"] == "queued"  # another query: no prepared file for it


async def test_the_portal_default_and_formats_that_do_not_fit(make_settings, start_worker):
    settings = make_settings(exports_on_publish=("csv", "geojson"))
    start_worker(settings)
    async with TestClient(TestServer(create_app(settings))) as client:
        plain = await new_dataset(client, "prices")  # no geometry: geojson does not fit it
        job = await publish_file(client, plain["dataset_uid"], "prices.csv", PRICES)
        exports = await wait_ready(client, job["result"]["exports_prepared"])
        assert [e["export_type"] for e in exports] == ["csv"] and exports[0]["status"] == "ready"
        none = await new_dataset(client, "quiet", exports_on_publish=[])  # its own list, empty: none
        job = await publish_file(client, none["dataset_uid"], "quiet.csv", CSV.encode())
        assert job["result"]["exports_prepared"] == []


async def test_exports_on_publish_names_known_formats(client):
    body = await call(client, "POST", f"{M}/datasets/", 400, json={"metadata": {"title": "x", "exports_on_publish": ["csv", "docx"]}})
    assert "exports_on_publish" in body["message"] and "'docx'" in body["message"]
    body = await call(client, "POST", f"{M}/datasets/", 400, json={"metadata": {"title": "x", "exports_on_publish": 3}})
    assert "a list of format names" in body["message"]
    ok = await call(client, "POST", f"{M}/datasets/", 201, json={"metadata": {"title": "x", "exports_on_publish": "CSV, json"}})
    assert ok["metadata"]["default"]["exports_on_publish"] == {"value": ["csv", "json"]}
