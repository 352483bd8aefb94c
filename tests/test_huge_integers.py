"""The attacker's integers: past 64 bits, negative, fractional, booleans, digits of other
scripts, at every entry point that takes a number. Each is a 400 JSON error naming the
parameter, before any work: no 500, no 200 cut off mid-stream."""
from __future__ import annotations

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.osdi import export_body, headers

V2 = "/api/v2/catalog/datasets/demo-events"
HUGE = "1" * 23
BAD_TEXT = [HUGE, "-5", "1.5", "1e40", "--5", "١٢", "0x10", " "]


async def refused(response, name: str) -> dict:
    body = await response.json()
    assert response.status == 400, body
    assert name in body["message"], body
    assert set(body) >= {"error_code", "message", "error"}
    return body


@pytest.mark.parametrize("limit", [1e40, 1.5, HUGE, -2, True, "12abc", [3], 10**12])
async def test_a_post_body_limit(client, demo_dataset, limit):
    response = await client.post("/api/v1/exports", json=export_body("csv", query={"limit": limit}),
                                 headers=headers(ADMIN_TOKEN))
    await refused(response, "limit")


async def test_a_limit_inside_a_records_href(client, demo_dataset):
    body = export_body("csv")
    body["_links"]["osdi:resource"]["href"] = f"http://portal.example{V2}/records?limit={HUGE}"
    response = await client.post("/api/v1/exports", json=body, headers=headers(ADMIN_TOKEN))
    await refused(response, "limit")


@pytest.mark.parametrize("value", BAD_TEXT)
async def test_a_streamed_export_limit_is_refused_before_any_byte(client, demo_dataset, value):
    response = await client.get(f"{V2}/exports/csv", params={"limit": value})
    assert response.headers["Content-Type"].startswith("application/json")
    await refused(response, "limit")


@pytest.mark.parametrize("path,name", [
    ("records", "limit"), ("records", "offset"), ("aggregates", "limit"), ("aggregates", "offset"),
    ("facets", "limit"),
])
@pytest.mark.parametrize("value", [HUGE, "-7", "2.5", "1e3"])
async def test_explore_paging(client, demo_dataset, path, name, value):
    await refused(await client.get(f"{V2}/{path}", params={name: value}), name)


@pytest.mark.parametrize("name", ["page", "per_page", "wait"])
async def test_osdi_query_integers(client, demo_dataset, name):
    for value in (HUGE, "-3", "1.0"):
        await refused(await client.get("/api/v1/exports", params={name: value}, headers=headers(ADMIN_TOKEN))
                      if name != "wait" else await client.get("/api/v1/exports/x", params={name: value},
                                                              headers=headers(ADMIN_TOKEN)), name)


@pytest.mark.parametrize("epsg", [HUGE, 10**20, -1, 0, 1.5, True, "2154x"])
async def test_an_epsg_option(client, demo_dataset, epsg):
    response = await client.post("/api/v1/exports", json=export_body("geojson", options={"epsg": epsg}),
                                 headers=headers(ADMIN_TOKEN))
    await refused(response, "epsg")


async def test_a_record_id_of_many_or_foreign_digits(client, demo_dataset):
    for raw in (HUGE * 300, "١٢", "²"):
        response = await client.get(f"{V2}/records/{raw}")
        body = await response.json()
        assert response.status == 404 and body["error_code"] == "UnknownRecordError", body
