"""Validation at the edge: what was accepted though wrong is refused when the request comes,
as a 400 JSON error that names the field, and what is right still works. Booleans in a JSON
body are JSON booleans (a query string keeps the platform's spellings); `epsg` is a known code
for a format that reprojects; a resource's encoding is a text encoding; strings and params are
bounded."""
from __future__ import annotations

import gzip

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.osdi import export_body, headers
from tests.test_management import CSV, M, call, new_dataset, upload

V2 = "/api/v2/catalog/datasets/demo-events"


async def post(client, export_type: str = "csv", **extra):
    return await client.post("/api/v1/exports", json=export_body(export_type, **extra), headers=headers(ADMIN_TOKEN))


async def refused(response, *words: str) -> dict:
    body = await response.json()
    assert response.status == 400, body
    for word in words:
        assert word in body["message"], body
    return body


@pytest.mark.parametrize("value", ["yes", "true", "false", 1, 0, "on"])
async def test_a_json_boolean_option_must_be_a_boolean(client, demo_dataset, value):
    await refused(await post(client, options={"compressed": value}), "compressed", "JSON boolean")


async def test_json_booleans_and_query_string_spellings_work(client, demo_dataset):
    assert (await post(client, options={"compressed": True, "use_labels": False})).status == 201
    response = await client.get(f"{V2}/exports/csv", params={"compressed": "yes", "limit": "2"})
    assert response.status == 200 and response.headers["Content-Type"] == "application/gzip"
    assert len(gzip.decompress(await response.read()).decode("utf-8-sig").splitlines()) == 3
    bad = await client.get(f"{V2}/exports/csv", params={"compressed": "maybe"})
    await refused(bad, "compressed")


@pytest.mark.parametrize("export_type,epsg", [("csv", 2154), ("json", 3857), ("ov2", 2154), ("kml", 3857),
                                              ("geojson", -1), ("geojson", 123_456), ("shp", 0)])
async def test_an_epsg_the_format_cannot_write_is_refused(client, demo_dataset, export_type, epsg):
    await refused(await post(client, export_type, options={"epsg": epsg}), "epsg")


async def test_an_epsg_a_geographic_format_reprojects_to(client, demo_dataset):
    assert (await post(client, "geojson", options={"epsg": 2154})).status == 201
    assert (await post(client, "csv", options={"epsg": 4326})).status == 201


async def test_query_and_body_fields_have_types_and_bounds(client, demo_dataset):
    await refused(await post(client, name="x" * 3000), "name", "at most")
    await refused(await post(client, query={"select": [1, 2]}), "select")
    await refused(await post(client, query={"where": {"a": 1}}), "where")
    await refused(await post(client, query={"group_by": ["city"]}), "group_by")
    await refused(await post(client, options=["csv"]), "options")


@pytest.mark.parametrize("params,words", [
    ({"encoding": "rot13"}, ("encoding", "not a text encoding")),
    ({"encoding": "base64"}, ("encoding", "not a text encoding")),
    ({"encoding": "no-such-codec"}, ("encoding", "unknown")),
    ({"encoding": 8}, ("encoding",)),
    ({"header_row": True}, ("header_row",)),
    ({"header_row": 10**20}, ("header_row",)),
    ({"delimiter": ";;"}, ("delimiter",)),
    ({"sheet": ""}, ("sheet",)),
    ({"colour": "blue"}, ("unknown params", "colour")),
])
async def test_resource_params_are_refused_when_the_resource_is_created(client, params, words):
    dataset = await new_dataset(client)
    stored = await upload(client, "shops.csv", CSV.encode())
    body = await call(client, "POST", f"{M}/datasets/{dataset['dataset_uid']}/resources/", 400,
                      json={"url": stored["url"], "params": params})
    assert all(word in body["message"] for word in words), body


async def test_known_text_encodings_are_taken(client):
    dataset = await new_dataset(client)
    stored = await upload(client, "shops.csv", CSV.encode("cp1252"))
    for encoding in ("utf-8", "cp1252", "latin-1", "UTF-16"):
        created = await call(client, "POST", f"{M}/datasets/{dataset['dataset_uid']}/resources/", 201,
                             json={"url": stored["url"], "params": {"encoding": encoding, "header_row": 1}})
        assert created["params"]["encoding"] == encoding



@pytest.mark.parametrize("name", ["a" * 5000, "Europe/" + "x" * 300, "../../etc/passwd", "Europe/Paris\x00"])
async def test_a_time_zone_name_of_any_length_is_a_400(client, demo_dataset, name):
    """A zone name is looked up as a path under the tz database; one too long for the file
    system raised OSError, past every handler, as a 500."""
    await refused(await client.get(f"{V2}/records", params={"timezone": name, "limit": "1"}), "time zone")
    await refused(await client.get(f"{V2}/aggregates", params={"select": "count(*)", "timezone": name}), "time zone")
    await refused(await post(client, options={"timezone": name}), "timezone")
