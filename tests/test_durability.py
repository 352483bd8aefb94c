"""Writes acknowledged only once replicas hold them (EXPORTD_REDIS_REPLICAS), on the tests'
real redis-server, which has no replica: a POST then answers 503 not_replicated naming the
export it made, which exists and is written; /health says why writes fail. And a
compare-and-set retried after Redis took it (a reply lost in a failover) answers applied
without applying twice."""
from __future__ import annotations

import orjson

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from domain.cas import APPLIED, SCRIPT
from tests.conftest import ADMIN_TOKEN
from tests.osdi import export_body, headers, poll


async def test_a_write_no_replica_confirms_answers_503_and_is_kept(make_settings, demo_dataset, start_worker):
    settings = make_settings(redis_replicas=1, redis_wait_ms=50)
    start_worker(settings)
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.post("/api/v1/exports", json=export_body("csv"), headers=headers(ADMIN_TOKEN))
        body = await response.json()
        assert response.status == 503 and body["error_code"] == "not_replicated", body
        assert "50 ms" in body["message"] and response.headers["Retry-After"]
        export = body["location"].rsplit("/", 1)[1]
        # not undone: the export is there, queued on the primary, and a worker writes it
        assert (await poll(client, ADMIN_TOKEN, export))["status"] == "ready"
        # reads are not held back
        assert (await client.get("/api/v1/exports", headers=headers(ADMIN_TOKEN))).status == 200
        health = await (await client.get("/health")).json()
        assert health["redis_replicas"] == 0
        assert any("EXPORTD_REDIS_REPLICAS" in reason for reason in health["reasons"]), health


async def test_without_replicas_asked_for_writes_answer_at_once(client, demo_dataset):
    response = await client.post("/api/v1/exports", json=export_body("csv"), headers=headers(ADMIN_TOKEN))
    assert response.status == 201


async def test_a_retried_compare_and_set_applies_once(state):
    script = state.register_script(SCRIPT)
    await state.hset("exportd:test:cas", mapping={"status": "processing"})
    change = {"when": {"status": ["processing"]}, "set": {"status": "ready"}, "zadd": [], "zrem": [],
              "may_create": False, "also": [["INCR", "exportd:test:counted"]]}
    first = orjson.dumps({**change, "op": "op-1"})
    assert await script(keys=["exportd:test:cas"], args=[first]) == APPLIED
    # the same change again, as redis-py sends it after a lost reply: applied, not refused, once
    assert await script(keys=["exportd:test:cas"], args=[first]) == APPLIED
    assert await state.get("exportd:test:counted") == "1"
    # another change with the same conditions is refused: the state moved on
    assert await script(keys=["exportd:test:cas"], args=[orjson.dumps({**change, "op": "op-2"})]) == 0
