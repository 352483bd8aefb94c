"""Knowing before and while waiting: POST /api/v1/exports/estimate answers, without creating
anything, the records an export would hold and its size and duration from the format's
measured cost; a queued export carries queue_position and estimated_ready_date, kept true as
the queue moves. The queue is held still by a real worker process frozen with SIGSTOP (alive
by its last heartbeat, taking nothing)."""
from __future__ import annotations

import signal

from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, export_body, export_id, headers, poll, wait_for

PARIS = "http://portal.example/api/v2/catalog/datasets/demo-events/records?where=city%3D%27Paris%27"


async def estimate(client, body: dict) -> tuple[int, dict]:
    response = await client.post("/api/v1/exports/estimate", json=body, headers=headers(ADMIN_TOKEN))
    return response.status, await response.json()


async def count(client) -> int:
    response = await client.get("/api/v1/exports", headers=headers(ADMIN_TOKEN))
    return (await response.json())["total_records"]


LINKS = {"_links": {"osdi:resource": {"href": PARIS}}}


def paris(export_type: str) -> dict:
    return {**export_body(export_type), **LINKS}


async def test_an_estimate_counts_the_records_and_prices_them_by_the_formats_measured_cost(client, worker, demo_dataset):
    status, before = await estimate(client, paris("csv"))
    assert status == 200 and before["estimated_bytes"] is None and before["measured_exports"] == 0
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv", **LINKS)))
    assert before["records_total"] == ready["records_count"] > 0
    exports = await count(client)

    status, again = await estimate(client, paris("csv"))  # the same export, now measured once: its own size
    assert status == 200 and again["measured_format"] is True and again["measured_exports"] == 1
    assert again["records_total"] == ready["records_count"] and again["estimated_bytes"] == ready["file_size"]
    assert again["estimated_seconds"] > 0
    _, everything = await estimate(client, export_body("csv"))
    assert everything["records_total"] > again["records_total"]
    assert everything["estimated_bytes"] > again["estimated_bytes"]
    _, other = await estimate(client, export_body("geojson"))  # never written: all formats' figures
    assert other["measured_format"] is False and other["estimated_bytes"] == everything["estimated_bytes"]
    assert await count(client) == exports  # nothing was created


async def test_an_estimate_refuses_what_a_post_refuses(client, demo_dataset):
    for body, code in ((export_body("nope"), "unknown_export_type"), (export_body("csv", options={"delimiter": "x"}), None),
                       (export_body("csv", dataset_id="missing"), "unknown_dataset"),
                       (export_body("csv", notify_url="ftp://x/"), None)):
        status, answer = await estimate(client, body)
        assert status == 400, (body, answer)
        if code:
            assert answer["error_code"] == code
    assert (await client.post("/api/v1/exports/estimate", json=export_body("csv"))).status == 200  # a visitor may ask
    wrong = await client.post("/api/v1/exports/estimate", json=export_body("csv"), headers={"OSDI-API-Token": "wrong"})
    assert wrong.status == 401
    assert await count(client) == 0


async def test_a_queued_export_knows_its_place_and_when_it_should_be_ready(client, worker_process, demo_dataset):
    worker = worker_process()
    first = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")), timeout=60)
    assert first["status"] == "ready" and "queue_position" not in first
    worker.send_signal(signal.SIGSTOP)  # alive by its heartbeat, taking nothing
    try:
        ids = [export_id(await create(client, ADMIN_TOKEN, "csv", **LINKS, name=f"n{i}")) for i in range(3)]

        async def resources() -> list[dict]:
            out = []
            for i in ids:
                response = await client.get(f"/api/v1/exports/{i}", headers=headers(ADMIN_TOKEN))
                if response.status == 200:
                    out.append(await response.json())
            return out
        queued = await resources()
        assert [e["queue_position"] for e in queued] == [1, 2, 3]
        dates = [e["estimated_ready_date"] for e in queued]
        assert all(dates) and dates[0] <= dates[2] and dates[1] <= dates[2]  # two slots: the third waits for one
        listed = (await (await client.get("/api/v1/exports", headers=headers(ADMIN_TOKEN))).json())["_embedded"]["osdi:exports"]
        assert sorted(e.get("queue_position", 0) for e in listed) == [0, 1, 2, 3]

        assert (await client.delete(f"/api/v1/exports/{ids[0]}", headers=headers(ADMIN_TOKEN))).status == 200
        ids.pop(0)
        assert [e["queue_position"] for e in await resources()] == [1, 2]  # the queue moved
    finally:
        worker.send_signal(signal.SIGCONT)
    for i in ids:
        done = await poll(client, ADMIN_TOKEN, i, timeout=60)
        assert done["status"] == "ready" and "queue_position" not in done and "estimated_ready_date" not in done


async def test_without_a_live_worker_the_date_is_not_made_up(client, demo_dataset):
    created = await create(client, ADMIN_TOKEN, "csv")
    assert created["status"] == "queued" and created["queue_position"] == 1
    assert created["estimated_ready_date"] is None
    await wait_for(lambda: count(client), 1, "the export listed")
