"""The OSDI Export resource's HTTP contract: collections, errors, method rules, isolation."""
from __future__ import annotations

import asyncio
import io

import pytest

from domain import keys
from domain.exports import ExportRepo
from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, export_body, export_id, headers, poll, wait_for


async def test_collection_is_paged_newest_first(client, demo_dataset, user_token):
    token = await user_token("carol")
    ids = [export_id(await create(client, token, "csv", name=f"export {i}")) for i in range(7)]
    response = await client.get("/api/v1/exports?per_page=3", headers=headers(token))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/hal+json")
    page1 = await response.json()
    assert (page1["total_pages"], page1["per_page"], page1["page"], page1["total_records"]) == (3, 3, 1, 7)
    embedded = page1["_embedded"]["osdi:exports"]
    assert [export_id(e) for e in embedded] == ids[::-1][:3]
    assert [link["href"].rsplit("/", 1)[1] for link in page1["_links"]["osdi:exports"]] == ids[::-1][:3]
    assert "prev" not in page1["_links"]
    assert page1["_links"]["next"]["href"].endswith("/api/v1/exports?page=2&per_page=3")
    assert page1["_links"]["curies"][0]["name"] == "osdi"

    page3 = await (await client.get("/api/v1/exports?page=3&per_page=3", headers=headers(token))).json()
    assert [export_id(e) for e in page3["_embedded"]["osdi:exports"]] == [ids[0]]
    assert "next" not in page3["_links"]
    assert page3["_links"]["prev"]["href"].endswith("page=2&per_page=3")

    beyond = await (await client.get("/api/v1/exports?page=9&per_page=3", headers=headers(token))).json()
    assert beyond["_embedded"]["osdi:exports"] == [] and beyond["total_records"] == 7

    default = await (await client.get("/api/v1/exports", headers=headers(token))).json()
    assert default["per_page"] == 25 and default["total_pages"] == 1 and len(default["_embedded"]["osdi:exports"]) == 7


async def test_created_export_has_the_osdi_fields(client, demo_dataset):
    response = await client.post("/api/v1/exports", json=export_body("csv"), headers=headers(ADMIN_TOKEN))
    body = await response.json()
    assert response.status == 201
    assert response.headers["Location"] == body["_links"]["self"]["href"]
    assert body["identifiers"] == [f"exportd:{export_id(body)}"]
    assert body["origin_system"] == "exportd"
    for name in ("created_date", "modified_date", "action_date"):
        assert body[name].endswith("Z")
    assert body["name"] == "demo-events as csv"
    assert body["_links"]["osdi:resource"]["href"].endswith("/api/v2/catalog/datasets/demo-events")
    assert "download_link" not in body


async def test_put_is_not_supported(client, demo_dataset):
    created = await create(client, ADMIN_TOKEN, "csv")
    response = await client.put(f"/api/v1/exports/{export_id(created)}", json={"name": "x"}, headers=headers(ADMIN_TOKEN))
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) >= {"GET", "DELETE"}
    assert "PUT" not in response.headers["Allow"]
    assert (await response.json())["error_code"] == "method_not_allowed"


async def test_users_see_only_their_own_exports(client, demo_dataset, user_token):
    alice, bob = await user_token("alice"), await user_token("bob")
    mine = export_id(await create(client, alice, "csv"))
    await create(client, bob, "json")

    response = await client.get(f"/api/v1/exports/{mine}", headers=headers(bob))
    assert response.status == 404 and (await response.json())["error_code"] == "not_found"
    response = await client.delete(f"/api/v1/exports/{mine}", headers=headers(bob))
    assert response.status == 404
    listed = await (await client.get("/api/v1/exports", headers=headers(bob))).json()
    assert listed["total_records"] == 1 and listed["_embedded"]["osdi:exports"][0]["export_type"] == "json"

    admin = await (await client.get("/api/v1/exports", headers=headers(ADMIN_TOKEN))).json()
    assert admin["total_records"] == 2
    assert (await client.get(f"/api/v1/exports/{mine}", headers=headers(ADMIN_TOKEN))).status == 200
    assert (await client.get(f"/api/v1/exports/{mine}", headers=headers(alice))).status == 200


async def test_delete_answers_a_notice_and_removes_the_export(client, demo_dataset):
    created = export_id(await create(client, ADMIN_TOKEN, "csv"))
    response = await client.delete(f"/api/v1/exports/{created}", headers=headers(ADMIN_TOKEN))
    assert response.status == 200
    assert await response.json() == {"notice": "This export was successfully deleted."}
    assert (await client.get(f"/api/v1/exports/{created}", headers=headers(ADMIN_TOKEN))).status == 404


BAD_REQUESTS = [
    # (description, body, expected status, expected error_code)
    ("malformed JSON", b'{"export_type": "csv",', 400, "invalid_request"),
    ("a JSON list", b"[1, 2]", 400, "invalid_request"),
    ("an empty body", b"", 400, "invalid_request"),
    ("no export_type", export_body("csv") | {"export_type": None}, 400, "invalid_request"),
    ("a numeric export_type", export_body("csv") | {"export_type": 5}, 400, "invalid_request"),
    ("unknown export_type", export_body("docx"), 400, "unknown_export_type"),
    ("no resource link", {"export_type": "csv"}, 400, "invalid_request"),
    ("a resource that is not a dataset", export_body("csv") | {"_links": {"osdi:resource": {"href": "http://x/api/v1/people/1"}}}, 400, "invalid_resource"),
    ("unknown dataset", export_body("csv", dataset_id="no-such-dataset"), 400, "unknown_dataset"),
    ("unknown option", export_body("csv", options={"colour": "red"}), 400, "invalid_option"),
    ("bad option value", export_body("csv", options={"with_bom": "perhaps"}), 400, "invalid_option"),
    ("bad timezone", export_body("json", options={"timezone": "Mars/Olympus"}), 400, "invalid_option"),
    ("options not an object", export_body("csv", options=[1]), 400, "invalid_request"),
    ("select of an unknown field", export_body("csv", query={"select": ["nope"]}), 400, "ODSQLError"),
    ("a malformed where", export_body("csv", query={"where": "city = = 1"}), 400, "ODSQLError"),
    ("a where in the resource link", export_body("csv") | {"_links": {"osdi:resource": {
        "href": "http://x/api/v2/catalog/datasets/demo-events/records?where=nope%3E1"}}}, 400, "ODSQLError"),
    ("unknown query key", export_body("csv", query={"colour": 3}), 400, "invalid_request"),
    ("a bad query limit", export_body("csv", query={"limit": "many"}), 400, "InvalidParameter"),
]


@pytest.mark.parametrize("description, body, status, code", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
async def test_bad_requests_get_json_errors(client, demo_dataset, description, body, status, code):
    if isinstance(body, bytes):
        response = await client.post("/api/v1/exports", data=body, headers=headers(ADMIN_TOKEN))
    else:
        response = await client.post("/api/v1/exports", json=body, headers=headers(ADMIN_TOKEN))
    assert response.status == status
    assert response.headers["Content-Type"].startswith("application/json")
    error = await response.json()
    assert error["error_code"] == code
    assert error["message"] and error["error"] == error["message"]


@pytest.mark.parametrize("query", ["page=0", "page=abc", "per_page=0", "per_page=101", "per_page=-1", "page=1.5"])
async def test_bad_page_numbers_are_400(client, query):
    response = await client.get(f"/api/v1/exports?{query}", headers=headers(ADMIN_TOKEN))
    assert response.status == 400
    assert (await response.json())["error_code"] == "invalid_request"


@pytest.mark.parametrize("token_headers", [{"OSDI-API-Token": "wrong"}, {"Authorization": "Apikey wrong"}])
async def test_a_wrong_token_is_401(client, demo_dataset, token_headers):
    for method, path in (("GET", "/api/v1/exports"), ("POST", "/api/v1/exports"), ("GET", "/api/v1/exports/x")):
        response = await client.request(method, path, json=export_body("csv"), headers=token_headers)
        assert response.status == 401, (method, path)
        assert (await response.json())["error_code"] == "unauthorized"


async def test_the_list_without_a_token_is_401(client):
    response = await client.get("/api/v1/exports")
    assert response.status == 401 and (await response.json())["error_code"] == "unauthorized"


async def test_apikey_authorization_header_works(client, demo_dataset, user_token):
    token = await user_token("dave")
    response = await client.post("/api/v1/exports", json=export_body("csv"), headers={"Authorization": f"apikey {token}"})
    assert response.status == 201


async def test_unknown_export_and_route_are_json_404(client):
    response = await client.get("/api/v1/exports/does-not-exist", headers=headers(ADMIN_TOKEN))
    assert response.status == 404 and (await response.json())["error_code"] == "not_found"
    response = await client.get("/no/such/route")
    assert response.status == 404 and (await response.json())["error_code"] == "not_found"


async def test_body_too_large_is_413(client):
    response = await client.post("/api/v1/exports", data=io.BytesIO(b"x" * (2 << 20)), headers=headers(ADMIN_TOKEN))
    assert response.status == 413
    assert (await response.json())["error_code"] == "request_too_large"


async def test_wait_holds_the_answer_until_the_status_changes(client, demo_dataset, start_worker):
    export = export_id(await create(client, ADMIN_TOKEN, "csv"))
    response = await client.get(f"/api/v1/exports/{export}?wait=1", headers=headers(ADMIN_TOKEN))
    body = await response.json()
    assert body["status"] == "queued"  # nobody works on it: the wait runs out
    assert response.headers["Retry-After"] == "1"
    start_worker()
    response = await client.get(f"/api/v1/exports/{export}?wait=30", headers=headers(ADMIN_TOKEN))
    body = await response.json()
    assert body["status"] in ("processing", "ready")  # answered at the first change
    if body["status"] == "ready":
        assert "Retry-After" not in response.headers
    assert (await client.get(f"/api/v1/exports/{export}?wait=61", headers=headers(ADMIN_TOKEN))).status == 400
    assert (await poll(client, ADMIN_TOKEN, export))["status"] == "ready"


async def test_a_waiting_request_is_woken_by_the_status_channel(client, demo_dataset, state, monkeypatch):
    """With the waiter's own look pushed past its 60 s wait, only the published change can
    answer it before then (the bound of 20 s is far from either)."""
    monkeypatch.setattr("api.exports.RECHECK", 120)
    export = export_id(await create(client, ADMIN_TOKEN, "csv"))
    waiting = asyncio.ensure_future(client.get(f"/api/v1/exports/{export}?wait=60", headers=headers(ADMIN_TOKEN)))
    await asyncio.sleep(0.3)  # the request is waiting
    assert not waiting.done()
    assert await ExportRepo(state).transition(export, "processing", expect=("queued",), attempt=1)
    response = await asyncio.wait_for(waiting, 20)
    assert (await response.json())["status"] == "processing"

    waiting = asyncio.ensure_future(client.get(f"/api/v1/exports/{export}?wait=60", headers=headers(ADMIN_TOKEN)))
    await asyncio.sleep(0.3)
    await ExportRepo(state).delete(await ExportRepo(state).get(export))  # deletion wakes it too
    assert (await asyncio.wait_for(waiting, 20)).status == 404


async def test_the_web_process_subscribes_to_an_export_only_while_a_request_waits_on_it(client, demo_dataset, state,
                                                                                   monkeypatch):
    """Its channel is subscribed while a request waits, again after the connection dropped,
    and no longer once the request is answered: exports nobody waits on cost it nothing."""
    monkeypatch.setattr("api.exports.RECHECK", 120)  # only the channel can answer within 20 s
    export = export_id(await create(client, ADMIN_TOKEN, "csv"))
    channel = keys.status_changes(export)

    async def subscribers_are(count: int) -> bool:
        return dict(await state.pubsub_numsub(channel))[channel] == count

    assert await subscribers_are(0)
    waiting = asyncio.ensure_future(client.get(f"/api/v1/exports/{export}?wait=60", headers=headers(ADMIN_TOKEN)))
    await wait_for(lambda: subscribers_are(1), 10, "the waiting request's subscription")
    assert await state.client_kill_filter(_type="pubsub") >= 1  # the connection drops …
    await wait_for(lambda: subscribers_are(1), 10, "the subscription back")  # … and comes back
    assert not waiting.done()
    assert await ExportRepo(state).transition(export, "processing", expect=("queued",), attempt=1)
    response = await asyncio.wait_for(waiting, 20)
    assert (await response.json())["status"] == "processing"
    await wait_for(lambda: subscribers_are(0), 10, "the channel unsubscribed")


@pytest.mark.parametrize("path", ["/api/management/v2/files?offset=10000000000000000000000000",
                                  "/api/management/v2/datasets?offset=1000000000000000000000000000000",
                                  "/api/v1/exports?per_page=5&page=99999999999"])
async def test_huge_numbers_in_the_query_are_400(client, path):
    response = await client.get(path, headers=headers(ADMIN_TOKEN))
    assert response.status == 400
    assert (await response.json())["error_code"]
