"""A visitor without an account exports a public dataset as on the platform (and on ArcGIS
Hub): creates the export without a token, follows it at its URL (its id, a UUID4, is the only
key to it) and downloads it; the per-user creation limit counts per IP address, the approval
threshold applies, restricted datasets stay invisible, and EXPORTD_ANONYMOUS_EXPORTS=0 turns it
off."""
from __future__ import annotations

import csv
import io

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from domain.datasets import DatasetRepo
from tests.conftest import ADMIN_TOKEN
from tests.osdi import export_body, export_id, headers

SMALL = "http://x/api/v2/catalog/datasets/demo-events/records?where=event_id<=50"


def small(n: int = 50) -> dict:
    return {"export_type": "csv", "_links": {"osdi:resource": {"href": SMALL.replace("50", str(n))}}}


async def ready(client, href: str) -> dict:
    for _ in range(200):
        response = await client.get(href + "?wait=5")
        body = await response.json()
        assert response.status == 200, body
        if body["status"] not in ("queued", "processing"):
            return body
    raise AssertionError(body)


async def test_a_visitor_exports_follows_and_downloads_without_a_token(client, demo_dataset, worker):
    response = await client.post("/api/v1/exports", json=small())
    created = await response.json()
    assert response.status == 201, created
    assert created["owner"].startswith("anonymous:") and "127.0.0.1" not in created["owner"]
    href = response.headers["Location"].replace(str(client.make_url("")).rstrip("/"), "")
    done = await ready(client, href)
    assert done["status"] == "ready" and done["records_count"] == 50
    link = done["download_link"].replace(str(client.make_url("")).rstrip("/"), "")
    download = await client.get(link)
    assert download.status == 200
    rows = list(csv.reader(io.StringIO((await download.read()).decode("utf-8-sig")), delimiter=";"))
    assert len(rows) == 51 and rows[0][0] == "event_id" and [r[0] for r in rows[1:]] == [str(n) for n in range(1, 51)]

    assert (await client.get("/api/v1/exports")).status == 401  # no list of "their" exports: no account
    deleted = await client.delete(href)
    assert deleted.status == 200 and (await client.get(href)).status == 404


async def test_an_accounts_export_stays_its_own(client, demo_dataset, user_token):
    erin = await user_token("erin")
    mine = export_id(await (await client.post("/api/v1/exports", json=small(), headers=headers(erin))).json())
    assert (await client.get(f"/api/v1/exports/{mine}")).status == 404  # not to a visitor
    assert (await client.delete(f"/api/v1/exports/{mine}")).status == 404
    theirs = export_id(await (await client.post("/api/v1/exports", json=small(7))).json())
    assert (await client.get(f"/api/v1/exports/{theirs}", headers=headers(erin))).status == 200  # the URL is the key
    listed = await (await client.get("/api/v1/exports", headers=headers(erin))).json()
    assert [export_id(e) for e in listed["_embedded"]["osdi:exports"]] == [mine]


async def test_restricted_datasets_stay_invisible(client, demo_dataset, state):
    repo = DatasetRepo(state)
    dataset = await repo.get("demo-events")
    dataset.visibility = "restricted"
    await repo.save(dataset)
    response = await client.post("/api/v1/exports", json=small())
    body = await response.json()
    assert response.status == 400 and body["error_code"] == "unknown_dataset" and "no dataset" in body["message"]


async def test_limits_count_per_address_and_the_approval_threshold_applies(make_settings, demo_dataset):
    settings = make_settings(rate_limit=2, approval_rows=100, trusted_proxies=("127.0.0.1",))
    async with TestClient(TestServer(create_app(settings))) as client:
        at = {"X-Forwarded-For": "198.51.100.7"}
        statuses = [(await client.post("/api/v1/exports", json=small(n), headers=at)).status for n in (1, 2, 3)]
        assert statuses == [201, 201, 429]
        other = await client.post("/api/v1/exports", json=export_body("csv"), headers={"X-Forwarded-For": "198.51.100.8"})
        body = await other.json()
        assert other.status == 201 and body["status"] == "pending_approval"  # 12,000 records > 100
        waiting = await client.get("/api/v1/exports?status=pending_approval", headers=headers(ADMIN_TOKEN))
        assert [e["owner"] for e in (await waiting.json())["_embedded"]["osdi:exports"]] == [body["owner"]]


async def test_anonymous_exports_can_be_turned_off(make_settings, demo_dataset):
    async with TestClient(TestServer(create_app(make_settings(anonymous_exports=False)))) as client:
        response = await client.post("/api/v1/exports", json=small())
        assert response.status == 401 and (await response.json())["error_code"] == "unauthorized"


async def test_a_webhook_needs_an_account(client, demo_dataset):
    response = await client.post("/api/v1/exports", json={**small(), "notify_url": "https://example.org/hook"})
    body = await response.json()
    assert response.status == 400 and body["field"] == "notify_url" and "needs an account" in body["message"]
