"""What is attached to a dataset, seen through the Explore API: attachments (alternative
exports), files, reuses and feedback; restricted datasets hide them too."""
from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.test_management import M, call, upload

V21 = "/api/explore/v2.1/catalog/datasets/demo-events"


async def demo_uid(client) -> str:
    return (await call(client, "GET", V21, headers={}))["dataset_uid"]


@pytest.mark.backends("local", "s3")
async def test_attachments_and_files(client, demo_dataset):
    uid = await demo_uid(client)
    stored = await upload(client, "guide.pdf", b"%PDF-1.4 a guide")
    attached = await call(client, "POST", f"{M}/datasets/{uid}/alternative_exports", 201, json={"url": stored["url"]})
    listed = await call(client, "GET", f"{V21}/attachments", headers={})
    [attachment] = listed["attachments"]
    assert attachment["id"] == attached["export_uid"] and attachment["title"] == "guide.pdf"
    response = await client.get(urlparse(attachment["url"]).path)
    assert response.status == 200 and await response.read() == b"%PDF-1.4 a guide"
    assert "guide.pdf" in response.headers["Content-Disposition"]
    assert (await client.get(f"{V21}/files/{stored['file_id']}")).status == 200
    other = await upload(client, "elsewhere.csv", b"a;b\n1;2\n")
    missing = await client.get(f"{V21}/files/{other['file_id']}")  # uploaded, but not this dataset's
    assert missing.status == 404 and (await missing.json())["error_code"]
    assert (await client.get(f"{V21}/attachments/ae_000000")).status == 404
    exports = await call(client, "GET", f"{V21}/exports", headers={})
    assert [a["id"] for a in exports["alternative_exports"]] == [attached["export_uid"]]


async def test_reuses_are_listed_and_read(client, demo_dataset):
    uid = await demo_uid(client)
    await call(client, "POST", f"{M}/datasets/{uid}/reuses", 400, json={"title": "no url"})
    added = await call(client, "POST", f"{M}/datasets/{uid}/reuses", 201,
                       json={"title": "Event map", "url": "https://example.org/map", "type": "map"})
    listed = await call(client, "GET", f"{V21}/reuses", headers={})
    assert listed["total_count"] == 1 and listed["results"][0]["title"] == "Event map"
    one = await call(client, "GET", f"{V21}/reuses/{added['reuse_id']}", headers={})
    assert one["url"] == "https://example.org/map"
    await call(client, "GET", f"{V21}/reuses/re_nope", 404, headers={})


async def test_feedback_reaches_the_publisher(client, demo_dataset):
    uid = await demo_uid(client)
    sent = await call(client, "PUT", f"{V21}/feedback", 201, headers={},
                      json={"title": "Wrong date", "message": "Event #12 is on a Sunday.", "contact": "a@b.example"})
    assert sent["sender"] is None
    await call(client, "PUT", f"{V21}/feedback/", 400, headers={}, json={"title": "no message"})
    await call(client, "PUT", f"{V21}/feedback", 400, headers={}, json={"title": "x", "message": "y", "extra": 1})
    received = await call(client, "GET", f"{M}/datasets/{uid}/feedback")
    assert [e["title"] for e in received["results"]] == ["Wrong date"]
    await call(client, "GET", f"{M}/datasets/{uid}/feedback", 401, headers={})


async def test_restricted_datasets_hide_what_is_attached(client, demo_dataset, state):
    from domain.datasets import DatasetRepo

    repo = DatasetRepo(state)
    dataset = await repo.get("demo-events")
    dataset.visibility = "restricted"
    await repo.save(dataset)
    for path in ("attachments", "reuses", "snapshots"):
        assert (await client.get(f"{V21}/{path}")).status == 404
    assert (await client.put(f"{V21}/feedback", json={"title": "t", "message": "m"})).status == 404
    assert (await client.get(f"{V21}/attachments", headers={"Authorization": f"Apikey {ADMIN_TOKEN}"})).status == 200
