"""Fair scheduling (worker/prompt_worker.py's claim): queued exports are taken in turns across
owners, whatever order they were queued in; an administrator's priority goes first;
EXPORTD_OWNER_RUNNING caps one owner's running exports. Real exports, a real worker, the start
times arq records for each job."""
from __future__ import annotations

import asyncio

from arq.connections import ArqRedis
from arq.jobs import Job

from domain import keys, queue
from domain import exports as ex
from tests.conftest import ADMIN_TOKEN
from tests.osdi import export_id, headers
from worker.prompt_worker import CLAIM

RECORDS = "http://x/api/v2/catalog/datasets/demo-events/records"


async def queue_exports(client, token: str, count: int, first: int = 1) -> list[str]:
    """`count` distinct small exports (distinct filters: identical ones would share one file)."""
    ids = []
    for n in range(first, first + count):
        body = {"export_type": "csv", "_links": {"osdi:resource": {"href": f"{RECORDS}?where=event_id<={n}"}}}
        response = await client.post("/api/v1/exports", json=body, headers=headers(token))
        assert response.status == 201, await response.text()
        ids.append(export_id(await response.json()))
    return ids


async def start_order(settings, client, ids: list[str]) -> list[str]:
    """The exports, once all are ready, in the order their jobs started (arq's start times, in ms)."""
    for _ in range(600):
        statuses = [(await (await client.get(f"/api/v1/exports/{i}", headers=headers(ADMIN_TOKEN))).json())["status"]
                    for i in ids]
        if all(s == ex.READY for s in statuses):
            break
        await asyncio.sleep(0.05)
    assert statuses == [ex.READY] * len(ids)
    pool = ArqRedis.from_url(settings.redis_url)
    try:
        started = {}
        for i in ids:
            info = await Job(keys.export_job_id(i, 1), pool, _queue_name=settings.queue_name,
                             _deserializer=queue.deserialize).result_info()
            started[i] = info.start_time
    finally:
        await pool.aclose()
    return sorted(ids, key=started.__getitem__)


async def test_one_owners_queue_does_not_hold_back_anothers_export(settings, client, demo_dataset, user_token, start_worker):
    erin, frank = await user_token("erin"), await user_token("frank")
    erins = await queue_exports(client, erin, 6)  # no worker yet: all queued, erin's first
    franks = await queue_exports(client, frank, 1, first=100)
    start_worker(max_jobs=1)
    order = await start_order(settings, client, erins + franks)
    assert order[:2] == [erins[0], franks[0]]  # frank waits behind one of erin's, not six
    assert order[2:] == erins[1:]  # erin's own keep their order


async def test_owners_take_turns(settings, client, demo_dataset, user_token, start_worker):
    erin, frank, gina = await user_token("erin"), await user_token("frank"), await user_token("gina")
    erins = await queue_exports(client, erin, 3)
    franks = await queue_exports(client, frank, 3, first=10)
    ginas = await queue_exports(client, gina, 1, first=20)
    start_worker(max_jobs=1)
    order = await start_order(settings, client, erins + franks + ginas)
    assert order == [erins[0], franks[0], ginas[0], erins[1], franks[1], erins[2], franks[2]]


async def test_an_administrator_gives_an_export_priority(settings, client, demo_dataset, user_token, start_worker):
    erin = await user_token("erin")
    erins = await queue_exports(client, erin, 4)
    response = await client.post(f"/api/v1/exports/{erins[3]}/priority", json={"priority": 5}, headers=headers(ADMIN_TOKEN))
    body = await response.json()
    assert response.status == 200 and body["priority"] == 5, body
    refused = await client.post(f"/api/v1/exports/{erins[2]}/priority", json={"priority": 5}, headers=headers(erin))
    assert refused.status == 403
    for bad in ({"priority": 10}, {"priority": "5"}, {"priority": True}, {}):
        response = await client.post(f"/api/v1/exports/{erins[2]}/priority", json=bad, headers=headers(ADMIN_TOKEN))
        assert response.status == 400 and "priority" in (await response.json())["message"]
    start_worker(max_jobs=1)
    order = await start_order(settings, client, erins)
    assert order == [erins[3], *erins[:3]]
    late = await client.post(f"/api/v1/exports/{erins[0]}/priority", json={"priority": 1}, headers=headers(ADMIN_TOKEN))
    assert late.status == 409 and "ready" in (await late.json())["message"]


async def test_a_cap_on_one_owners_running_exports(settings, client, demo_dataset, user_token):
    """The claim by hand, as a worker of two free slots makes it: with EXPORTD_OWNER_RUNNING=1,
    erin's second export waits while her first runs, and frank's is taken beside it."""
    erin, frank = await user_token("erin"), await user_token("frank")
    erins = await queue_exports(client, erin, 3)
    pool = ArqRedis.from_url(settings.redis_url)
    claim = pool.register_script(CLAIM)

    async def take(free: int, cap: int) -> list[str]:
        claimed = await claim(keys=[settings.queue_name, keys.SERVED], args=[
            10 ** 13, 60_000, free, "arq:in-progress:", 0, 100, keys.export(""), cap])
        return [job_id.decode().split(":")[1] for job_id in claimed[::2]]

    try:
        assert await take(2, cap=1) == [erins[0]]  # one slot stays free rather than run a second of hers
        franks = await queue_exports(client, frank, 1, first=100)
        assert await take(2, cap=1) == [franks[0]]
        assert await take(2, cap=0) == erins[1:]  # no cap: both of hers
    finally:
        await pool.aclose()


async def test_metrics_show_the_queue_by_owner_class(client, demo_dataset, user_token):
    erin, frank = await user_token("erin"), await user_token("frank")
    await queue_exports(client, erin, 2)
    await queue_exports(client, frank, 1, first=10)
    await queue_exports(client, ADMIN_TOKEN, 1, first=20)
    text = await (await client.get("/metrics")).text()
    assert 'exportd_exports_queued{owner_class="user"} 3' in text
    assert 'exportd_exports_queued{owner_class="administrator"} 1' in text
    assert "exportd_queued_owners 3" in text
