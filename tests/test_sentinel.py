"""A failover under load, for real: a primary, a replica and three sentinels (tests/sentinels.py),
a web process and a worker process that know Redis only through the sentinels and wait for a
replica on every acknowledged write. The primary is SIGKILLed mid-export; the sentinels promote
the replica; every export the API acknowledged (201) ends ready with all its records, writes
during the switch answer 201 or a JSON 503, and new exports are taken, by the same web and
worker processes."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from domain import demo
from domain.redis_server import free_port
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.osdi import export_body, export_id, headers, poll, wait_for
from tests.processes import alive
from tests.sentinels import SentinelCluster, info

ROOT = Path(__file__).resolve().parent.parent
MASTER = "exportd-test"
ROWS = 120_000
pytestmark = pytest.mark.faults


@pytest.fixture
def cluster(tmp_path):
    with SentinelCluster(tmp_path / "redis", MASTER) as running:
        yield running


@pytest.fixture
def spawn(tmp_path):
    """Start `python -m module` with the environment given; every process is killed at the end."""
    processes: list[subprocess.Popen] = []

    def start(module: str, env: dict[str, str]) -> subprocess.Popen:
        with open(tmp_path / f"{module}-{len(processes)}.log", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, **env})
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.timeout(400)  # a minute alone; several on a machine busy with the whole suite
async def test_a_failover_loses_no_acknowledged_export(cluster, make_settings, spawn, tmp_path):
    settings = make_settings(redis_url=cluster.primary.url)
    source = tmp_path / "events.parquet"
    pq.write_table(demo.table(rows=ROWS, seed=5), source, row_group_size=10_000)
    await load_dataset(settings, source, "events")
    port = free_port()
    env = {
        "EXPORTD_DATA_DIR": str(settings.data_dir), "EXPORTD_SECRET_KEY": settings.secret_key,
        "EXPORTD_ADMIN_TOKEN": ADMIN_TOKEN, "EXPORTD_REDIS_URL": f"redis://{MASTER}/0",  # the host is the sentinels'
        "EXPORTD_REDIS_SENTINELS": cluster.addresses, "EXPORTD_REDIS_MASTER": MASTER,
        "EXPORTD_REDIS_REPLICAS": "1", "EXPORTD_REDIS_WAIT_MS": "1000", "EXPORTD_REDIS_RETRY_SECONDS": "15",
        "EXPORTD_LEASE_SECONDS": "6", "EXPORTD_PORT": str(port), "EXPORTD_QUERY_PROCESSES": "2",
        "EXPORTD_RATE_LIMIT": "0", "EXPORTD_TEST_BATCH_SECONDS": "0.25",
    }
    web = spawn("api", env)
    worker = spawn("tests.slow_worker", env)
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as client:
        async def healthy():
            try:
                return (await client.get("/health")).status == 200
            except aiohttp.ClientError:
                return False
        await wait_for(healthy, 60, "the web process and the worker to come up through the sentinels")

        async def post(n: int) -> tuple[int, dict]:
            # a query of each export's own: no export shares another's file
            body = export_body("csv" if n % 2 else "jsonl", "events", query={"where": f"event_id > -{n + 1}"})
            response = await client.post("/api/v1/exports", json=body, headers=headers(ADMIN_TOKEN))
            return response.status, await response.json()

        acknowledged: list[str] = []
        for n in range(3):
            status, body = await post(n)
            assert status == 201, body
            acknowledged.append(export_id(body))

        async def progressing():
            body = await poll(client, ADMIN_TOKEN, acknowledged[0], until=("processing", "ready", "failed"))
            assert body["status"] == "processing", f"the export ended before the primary could be killed: {body}"
            return body["progress"]["records_done"] > 0
        await wait_for(progressing, 60, "the first export to make progress")

        old_primary = cluster.primary.port
        cluster.primary.process.send_signal(signal.SIGKILL)
        cluster.primary.process.wait(10)
        killed_at = time.monotonic()

        # writes while the sentinels elect a new primary: acknowledged, or refused in JSON
        answers: list[tuple[int, str]] = []
        n = len(acknowledged)
        while cluster.primary_port() in (old_primary, None) and time.monotonic() - killed_at < 30:
            status, body = await post(n)
            answers.append((status, body.get("error_code", "")))
            if status == 201:
                acknowledged.append(export_id(body))
            n += 1
        assert cluster.primary_port() == cluster.replica.port, "the sentinels promoted no replica within 30 s"
        assert all(status == 201 or (status == 503 and code in ("redis_unavailable", "not_replicated"))
                   for status, code in answers), answers

        # the old primary comes back (as its supervisor would restart it), a replica of the new one
        cluster.primary.args = ("--replicaof", "127.0.0.1", str(cluster.replica.port))
        cluster.primary.start()

        async def taken():
            status, body = await post(n)
            assert status in (201, 503), body  # 503 not_replicated until the replica has caught up
            return export_id(body) if status == 201 else None
        for _ in range(2):
            acknowledged.append(await wait_for(taken, 60, "a new export to be acknowledged after the failover"))
            n += 1

        finals = [await poll(client, ADMIN_TOKEN, export, timeout=120) for export in acknowledged]
        for final in finals:
            assert final["status"] == "ready", final
            assert final["records_count"] == ROWS, final
        for final in (finals[0], finals[-1]):  # one written across the failover, one after it
            link = final["download_link"].split("://", 1)[1].split("/", 1)[1]
            response = await client.get("/" + link)
            assert response.status == 200
            data = await response.read()
            if final["export_type"] == "csv":
                assert pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(delimiter=";", newlines_in_values=True)).num_rows == ROWS
            else:
                assert len([orjson.loads(line) for line in data.splitlines()]) == ROWS

    # the same processes throughout: neither was restarted, and the worker's arq loop never gave up
    assert alive(web.pid) and alive(worker.pid)
    assert info(cluster.primary.port).get("role") == "slave"
    worker_log = next(tmp_path.glob("tests.slow_worker-*.log")).read_text()
    assert "reconnecting in" not in worker_log, worker_log[-3000:]
    print(f"\n{len(acknowledged)} exports acknowledged, all ready; answers during the switch: {answers}")
