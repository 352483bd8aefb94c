"""The attacker's heavy queries: a query process that crashes, outgrows its memory budget or
runs past its time costs its own request (a JSON error naming why), and the web process goes
on serving; three worst-case aggregates at once on a 3M-row dataset keep the web process and
its query processes within 400 MiB of growth, while a light request answers within a second
and the event loop is never held 100 ms."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.keys import POOL
from tests.conftest import load_dataset
from tests.processes import rss

V2 = "/api/v2/catalog/datasets"
BIG_ROWS = 3_000_000
# a group a record: in key order, a page of groups is computed in bounded memory; ordered by
# an aggregate, every group must be held, and the memory budget ends it
WORST = {"select": "count(*) as n, sum(attendance) as people, min(price) as low", "group_by": "title"}
WORST_ORDERED = {**WORST, "order_by": "n desc, people desc"}
SLOW = {"where": " OR ".join(f"title like '*{i}*9'" for i in range(40)), "order_by": "title"}  # seconds, little memory


def unique_table(rows: int) -> pa.Table:
    ids = pa.array(np.arange(rows, dtype=np.int64))
    rng = np.random.default_rng(7)
    return pa.table({
        "event_id": ids,
        "title": pc.binary_join_element_wise("event ", pc.cast(ids, pa.string()), ""),
        "city": pa.array(rng.choice(["Lyon", "Lille", "Nantes"], rows)),
        "attendance": pa.array(rng.integers(0, 50_000, rows)),
        "price": pa.array(rng.random(rows) * 100),
    })


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.parquet"
    pq.write_table(unique_table(BIG_ROWS), path, row_group_size=256 * 1024)
    return path


def web_rss(app) -> int:
    """The web process and its query processes together."""
    pool = app[POOL]
    return rss(os.getpid(), *(c.pid for c in pool._idle + list(pool._busy)))


class LoopLag:
    """The longest the event loop was held between two 10 ms ticks: the tick's delay, but no
    more than the loop's thread spent on the CPU meanwhile, so that other processes taking
    the machine's cores (a busy CI host) do not count as the loop being held."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.task: asyncio.Task | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, min(loop.time() - before - 0.01, time.thread_time() - cpu))

    def __enter__(self) -> "LoopLag":
        self.task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc) -> None:
        assert self.task is not None
        self.task.cancel()


async def test_a_crashing_query_process_costs_its_request_only(client, demo_dataset, big_file, settings):
    await load_dataset(settings, big_file, "big")
    pool = client.server.app[POOL]
    heavy = asyncio.ensure_future(client.get(f"{V2}/big/records", params=SLOW))
    for _ in range(200):
        if pool._busy:
            break
        await asyncio.sleep(0.01)
    (child,) = pool._busy
    os.kill(child.pid, signal.SIGSEGV)
    response = await heavy
    body = await response.json()
    assert response.status == 500 and body["error_code"] == "query_failed", body
    assert "-11" in body["message"]  # the signal it died of
    again = await client.get(f"{V2}/demo-events/records", params={"limit": "2"})
    assert again.status == 200 and len((await again.json())["results"]) == 2


async def test_past_its_memory_budget_a_query_is_a_400_naming_it(make_settings, big_file):
    settings = make_settings(query_memory_mb=64)
    await load_dataset(settings, big_file, "big")
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get(f"{V2}/big/aggregates", params=WORST_ORDERED)
        body = await response.json()
        assert response.status == 400 and body["error_code"] == "query_too_large", body
        assert body["budget"] == "memory" and "64 MiB" in body["message"]
        light = await client.get(f"{V2}/big/records", params={"limit": "1", "where": "event_id = 5"})
        assert light.status == 200 and (await light.json())["results"][0]["title"] == "event 5"


async def test_past_its_time_budget_a_query_is_a_503_with_retry_after(make_settings, big_file):
    settings = make_settings(query_seconds=1, query_memory_mb=4096)
    await load_dataset(settings, big_file, "big")
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get(f"{V2}/big/records", params=SLOW)
        body = await response.json()
        assert response.status == 503 and body["error_code"] == "query_timeout", body
        assert response.headers["Retry-After"] and body["budget"] == "time"
        light = await client.get(f"{V2}/big/records", params={"limit": "1"})
        assert light.status == 200


async def test_a_crowd_of_heavy_queries_waits_its_turn_or_is_told_to_come_back(make_settings, big_file):
    settings = make_settings(query_wait=0)
    await load_dataset(settings, big_file, "big")
    async with TestClient(TestServer(create_app(settings))) as client:
        answers = await asyncio.gather(*(client.get(f"{V2}/big/aggregates", params={
            "select": "count(*)", "group_by": "city"}) for _ in range(3)))
        statuses = sorted(a.status for a in answers)
        assert statuses[0] == 200 and 503 in statuses, statuses
        busy = next(a for a in answers if a.status == 503)
        assert (await busy.json())["error_code"] == "busy" and busy.headers["Retry-After"]


async def test_a_page_of_a_million_groups_is_exact(client, big_file, settings):
    """Without order_by, groups come in key order and a page of them is exact, though every
    record is a group of its own."""
    await load_dataset(settings, big_file, "big")
    response = await client.get(f"{V2}/big/records", params={**WORST, "limit": "100", "offset": "19900"})
    body = await response.json()
    assert response.status == 200, body
    table = pq.read_table(big_file).sort_by("title").slice(19_900, 100)
    assert body["results"] == [{"title": t, "n": 1, "people": a, "low": p} for t, a, p in
                               zip(*(table[c].to_pylist() for c in ("title", "attendance", "price")))]
    past = await client.get(f"{V2}/big/records", params={**WORST, "limit": "100", "offset": "19901"})
    assert past.status == 400 and "at most 20000" in (await past.json())["message"]


@pytest.mark.parametrize("worst", [WORST, WORST_ORDERED], ids=["key-order", "by-aggregate"])
async def test_three_worst_case_aggregates_at_once(client, demo_dataset, big_file, settings, worst):
    """The issue's figures: web RSS (with its query processes) grows < 400 MiB, a light
    request answers within 1 s, the loop is never held 100 ms. In key order each answers its
    20,000 groups; ordered by an aggregate, each ends with the memory budget's clear 400."""
    await load_dataset(settings, big_file, "big")
    app = client.server.app
    warm = await client.get(f"{V2}/demo-events/records", params={"limit": "1"})
    assert warm.status == 200
    before = web_rss(app)
    peak = before
    light_worst = 0.0
    with LoopLag() as lag:
        heavy = [asyncio.ensure_future(client.get(f"{V2}/big/aggregates", params=worst)) for _ in range(3)]
        while not all(h.done() for h in heavy):
            started = time.monotonic()
            light = await client.get(f"{V2}/demo-events/records", params={"limit": "5", "where": "city = 'Lyon'"})
            light_worst = max(light_worst, time.monotonic() - started)
            assert light.status == 200
            peak = max(peak, web_rss(app))
            await asyncio.sleep(0.05)
    answers = [await h for h in heavy]
    bodies = [await a.json() for a in answers]
    for answer, body in zip(answers, bodies):
        if worst is WORST:
            assert answer.status == 200 and len(body["results"]) == 20_000, body
        else:
            assert (answer.status, body["error_code"]) == (400, "query_too_large"), body
    growth = (peak - before) / 2**20
    print(f"\nweb RSS {before / 2**20:.0f} MiB -> peak {peak / 2**20:.0f} MiB (+{growth:.0f}); "
          f"light request worst {light_worst * 1000:.0f} ms; loop held at most {lag.worst * 1000:.0f} ms; "
          f"answers {[a.status for a in answers]}")
    assert growth < 400
    assert light_worst < 1.0
    assert lag.worst < 0.1


async def test_a_client_that_leaves_mid_stream_frees_its_query_process(client, big_file, settings):
    await load_dataset(settings, big_file, "big")
    pool = client.server.app[POOL]
    response = await client.get(f"{V2}/big/exports/csv")
    assert response.status == 200
    await response.content.readexactly(1024)
    response.close()
    for _ in range(200):
        if not pool._busy:
            break
        await asyncio.sleep(0.02)
    assert not pool._busy
    small = await client.get(f"{V2}/big/exports/csv", params={"limit": "3", "order_by": "event_id"})
    lines = (await small.text()).splitlines()
    assert small.status == 200 and len(lines) == 4 and lines[1].startswith('0;"event 0";'), lines


async def test_a_dead_fork_server_is_started_again(client, demo_dataset):
    """The fork server itself killed, with every query process: the next query still answers."""
    import multiprocessing.forkserver

    pool = client.server.app[POOL]
    assert (await client.get(f"{V2}/demo-events/records", params={"limit": "1"})).status == 200
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    for child in pool._idle:
        os.kill(child.pid, signal.SIGKILL)
    os.kill(server, signal.SIGKILL)
    await asyncio.sleep(0.1)  # the loop sees the killed processes' sockets close
    response = await client.get(f"{V2}/demo-events/records", params={"limit": "1"})
    assert response.status == 200, await response.text()  # idle processes found dead are not used
    assert multiprocessing.forkserver._forkserver._forkserver_pid != server
