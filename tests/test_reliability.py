"""Nothing lost, nothing leaked — for real: worker processes killed with SIGKILL or stopped
with SIGTERM, Redis stopped and restarted, a full disk, a size limit, plain-JSON jobs, rate
limits. Each test bounds its own waiting."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.access_log import AccessLogger
from api.app import create_app
from domain import demo, keys, queue
from domain.exports import Export, ExportRepo
from domain.redis_server import RedisServer
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.osdi import STATUSES as TERMINAL_OR_ANY
from tests.osdi import create, download, export_id, headers, poll, wait_for
from worker.settings import shutdown, startup
from worker.sweep import recover

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.faults


@pytest.fixture(scope="session")
def big_events(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big-events.parquet"
    pq.write_table(demo.table(rows=300_000, seed=11), path, row_group_size=20_000)
    return path


SLOW = "tests.slow_worker"  # the production worker, taking 0.2 s a batch: interruptible mid-export


@pytest.fixture
def spawn_worker(settings, tmp_path):
    """Start real worker processes (`python -m worker`); all are killed at the end."""
    processes: list[subprocess.Popen] = []

    def spawn(module: str = "worker", **env: str) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(processes)}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "EXPORTD_DATA_DIR": str(settings.data_dir), "EXPORTD_REDIS_URL": settings.redis_url,
                 "EXPORTD_SECRET_KEY": settings.secret_key, "EXPORTD_ADMIN_TOKEN": settings.admin_token,
                 "EXPORTD_LEASE_SECONDS": "3", **env})
        log.close()
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def processing_with_progress(client, export: str) -> dict:
    async def check():
        body = await poll(client, ADMIN_TOKEN, export, until=("processing", "ready", "failed"), timeout=60)
        assert body["status"] == "processing", f"export ended before the test could interrupt it: {body}"
        return body if body["progress"]["records_done"] > 0 else None
    return await wait_for(check, 60, "the export to make progress")


async def no_partials_left(settings) -> None:
    async def empty():
        return not list((settings.data_dir / ".partial").iterdir())
    await wait_for(empty, 15, "the dead attempt's partial file to be removed")


def export_files(settings, export: str) -> list[Path]:
    return sorted(p for p in (settings.data_dir / "exports" / export).rglob("*") if p.is_file())


async def test_workers_run_niced_below_redis_and_the_web_process(settings, client, spawn_worker, demo_dataset, tmp_path):
    """Every thread of a worker, its exports' included, runs EXPORTD_WORKER_NICE (10 by
    default) above the niceness it was started with."""
    started_at = os.getpriority(os.PRIO_PROCESS, 0)
    for n, (env, nice) in enumerate((({}, 10), ({"EXPORTD_WORKER_NICE": "3"}, 3))):
        worker = spawn_worker(**env)  # the only worker running
        # a query of its own: an export like the first would share its file, and run nowhere
        export = export_id(await create(client, ADMIN_TOKEN, "csv", query={"where": f"event_id > -{n}"}))
        assert (await poll(client, ADMIN_TOKEN, export))["status"] == "ready"
        assert export in (tmp_path / f"worker-{n}.log").read_text()  # its export threads ran it
        threads = [int(tid) for tid in os.listdir(f"/proc/{worker.pid}/task")]
        assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in threads} == {min(19, started_at + nice)}
        worker.kill()
        worker.wait(10)


async def test_a_killed_worker_s_export_is_finished_by_another(settings, client, spawn_worker, big_events):
    await load_dataset(settings, big_events, "big-events")
    first = spawn_worker(SLOW)  # an export that is sure to be mid-way when the worker dies
    export = export_id(await create(client, ADMIN_TOKEN, "jsonl", dataset_id="big-events"))
    running = await processing_with_progress(client, export)
    assert "download_link" not in running and export_files(settings, export) == []  # nothing downloadable yet
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed_at = time.monotonic()
    spawn_worker()
    ready = await poll(client, ADMIN_TOKEN, export, timeout=90)
    assert ready["status"] == "ready", ready
    assert time.monotonic() - killed_at < 60
    status, body, _ = await download(client, ready["download_link"])
    assert status == 200 and ready["records_count"] == 300_000
    ids = [orjson.loads(line)["event_id"] for line in body.splitlines()]
    assert sorted(ids) == list(range(1, 300_001))  # every record, exactly once
    assert [f.parent.name for f in export_files(settings, export)] == ["2"]  # the second attempt's file only
    await no_partials_left(settings)


async def test_sigterm_hands_running_exports_back(settings, client, spawn_worker, big_events):
    await load_dataset(settings, big_events, "big-events")
    first = spawn_worker(SLOW, EXPORTD_SHUTDOWN_GRACE="1")  # the export takes longer than the grace
    export = export_id(await create(client, ADMIN_TOKEN, "json", dataset_id="big-events"))
    await processing_with_progress(client, export)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    handed_back = await poll(client, ADMIN_TOKEN, export, until=("queued", "ready"), timeout=10)
    assert handed_back["status"] == "queued"  # nobody holds it, and it is not lost
    spawn_worker()
    ready = await poll(client, ADMIN_TOKEN, export, timeout=90)
    assert ready["status"] == "ready" and ready["records_count"] == 300_000


async def test_worker_and_api_ride_out_a_redis_restart(make_settings, tmp_path, spawn_worker, demo_file):
    with RedisServer(tmp_path / "own-redis") as server:
        settings = make_settings(redis_url=server.url)
        await load_dataset(settings, demo_file, "demo-events")
        worker = spawn_worker(EXPORTD_REDIS_URL=server.url)
        async with TestClient(TestServer(create_app(settings))) as client:
            before = export_id(await create(client, ADMIN_TOKEN, "csv"))
            assert (await poll(client, ADMIN_TOKEN, before, timeout=60))["status"] == "ready"
            server.stop()
            response = await client.get("/api/v1/exports", headers=headers(ADMIN_TOKEN))
            assert response.status == 503 and (await response.json())["error_code"] == "redis_unavailable"
            await asyncio.sleep(2)
            assert worker.poll() is None, "the worker exited when Redis went away"
            server.start()
            async def answers():
                return (await client.get("/api/v1/exports", headers=headers(ADMIN_TOKEN))).status == 200
            await wait_for(answers, 30, "the API to recover")
            # nothing acknowledged was lost, and the same worker process takes new work
            assert (await poll(client, ADMIN_TOKEN, before))["status"] == "ready"
            after = export_id(await create(client, ADMIN_TOKEN, "json"))
            assert (await poll(client, ADMIN_TOKEN, after, timeout=60))["status"] == "ready"
            assert worker.poll() is None


async def test_recover_gives_a_lapsed_export_a_new_attempt_then_fails_it(settings, state, worker):
    repo = ExportRepo(state)
    export = Export.new(owner="admin", name="x", export_type="csv", dataset_id="demo-events", resource_href="x")
    await repo.create(export)
    await repo.transition(export.id, "queued", expect=("initializing",))
    await repo.transition(export.id, "processing", expect=("queued",), attempt=1, lapses=settings.max_attempts - 2)
    await state.zadd(keys.LEASES, {export.id: 0})  # as if its worker died long ago
    ctx = {"settings": settings, "redis": worker.pool}
    await startup(ctx)
    try:
        assert await recover(ctx) == {"requeued": 1, "failed": 0, "partials_removed": 0}
        queued = await repo.get(export.id)
        assert queued.status == "queued" and queued.lapses == settings.max_attempts - 1
        assert await state.exists(f"arq:job:{keys.export_job_id(export.id, 2)}")  # the next attempt is queued
        await state.delete(f"arq:job:{keys.export_job_id(export.id, 2)}")
        await repo.transition(export.id, "processing", expect=("queued",), attempt=2)
        await state.zadd(keys.LEASES, {export.id: 0})
        assert await recover(ctx) == {"requeued": 0, "failed": 1, "partials_removed": 0}
        failed = await repo.get(export.id)
        assert failed.status == "failed" and "stopped its worker" in failed.detail
        await repo.transition(export.id, "processing", expect=("failed",))  # not allowed: nothing changes
        assert (await repo.get(export.id)).status == "failed"
    finally:
        await shutdown(ctx)


async def test_a_queued_export_whose_job_is_gone_gets_a_new_one_then_fails(settings, client, state, demo_dataset,
                                                                           start_worker):
    """Its job lost (the process queuing it stopped before the enqueue, an older worker refused
    the job's shape): recover queues the next attempt, which a worker finishes; lost too many
    times, the export fails with a reason rather than staying queued for ever."""
    exports = ExportRepo(state)
    lost, lost_again = [export_id(await create(client, ADMIN_TOKEN, t)) for t in ("csv", "json")]  # no worker yet
    for export in (lost, lost_again):
        job = keys.export_job_id(export, 1)
        await state.delete(f"arq:job:{job}")
        await state.zrem(settings.queue_name, job)
    await exports.update(lost_again, expect=("queued",), lapses=settings.max_attempts - 1)
    ctx = {"settings": settings, "redis": await queue.arq_pool(settings.redis_url)}
    await startup(ctx)
    try:
        assert (await recover(ctx))["requeued"] == 0  # queued a moment ago: the enqueue may be on its way
        await state.zadd(keys.exports_in("queued"), {lost: time.time() - 60, lost_again: time.time() - 60})
        assert await recover(ctx) == {"requeued": 1, "failed": 1, "partials_removed": 0}
        queued = await exports.get(lost)
        assert (queued.status, queued.attempt, queued.lapses) == ("queued", 1, 1)  # attempt 2's job is queued
        assert await recover(ctx) == {"requeued": 0, "failed": 0, "partials_removed": 0}  # and there
    finally:
        await shutdown(ctx)
        await ctx["redis"].aclose()
    start_worker()
    assert (await poll(client, ADMIN_TOKEN, lost))["status"] == "ready"
    failed = await poll(client, ADMIN_TOKEN, lost_again)
    assert failed["status"] == "failed" and "job was lost" in failed["detail"]


async def test_a_live_lease_is_not_taken(settings, state, worker):
    repo = ExportRepo(state)
    export = Export.new(owner="admin", name="x", export_type="csv", dataset_id="demo-events", resource_href="x")
    await repo.create(export)
    await repo.transition(export.id, "queued", expect=("initializing",))
    await repo.transition(export.id, "processing", expect=("queued",), attempt=1)  # leased for 15 s
    ctx = {"settings": settings, "redis": worker.pool}
    await startup(ctx)
    try:
        assert await recover(ctx) == {"requeued": 0, "failed": 0, "partials_removed": 0}
        assert not await repo.transition(export.id, "queued", expect=("processing",), at_attempt=1, lease_lapsed=True)
    finally:
        await shutdown(ctx)


async def test_export_over_the_size_limit_fails_and_the_worker_goes_on(make_settings, start_worker, demo_dataset):
    settings = make_settings(max_export_bytes=50_000)
    start_worker(settings)
    async with TestClient(TestServer(create_app(settings))) as client:
        big = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "json")))
        assert big["status"] == "failed" and "50,000-byte limit" in big["detail"]
        assert "download_link" not in big
        small = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv", query={"limit": 10})))
        assert small["status"] == "ready"
    assert list((settings.data_dir / ".partial").iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("export_type", ["json", "fgb"])  # into the partial; into a scratch file beside it
async def test_a_full_disk_fails_the_export_with_a_reason(make_settings, start_worker, demo_file, small_disk, export_type):
    settings = make_settings(data_dir=small_disk)
    await load_dataset(settings, demo_file, "demo-events")
    start_worker(settings)
    async with TestClient(TestServer(create_app(settings))) as client:
        full = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, export_type)))
        assert full["status"] == "failed" and "disk space" in full["detail"]
        assert list((small_disk / ".partial").iterdir()) == []  # the half file is gone
        small = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv", query={"limit": 5})))
        assert small["status"] == "ready"


async def test_jobs_are_plain_json(settings, client, demo_dataset, state):
    from redis.asyncio import Redis

    export = export_id(await create(client, ADMIN_TOKEN, "csv"))
    binary = Redis.from_url(settings.redis_url)
    try:
        job = await binary.get(f"arq:job:{keys.export_job_id(export, 1)}")
    finally:
        await binary.aclose()
    decoded = orjson.loads(job)
    assert decoded["f"] == "run_export" and decoded["a"] == [export, 1, demo_dataset]


async def test_a_job_queued_before_jobs_named_their_dataset_still_runs(settings, client, demo_dataset, start_worker):
    export = export_id(await create(client, ADMIN_TOKEN, "csv"))
    job_id = keys.export_job_id(export, 1)
    pool = await queue.arq_pool(settings.redis_url)
    try:  # the job as an earlier version queued it: export id and attempt
        await pool.delete(f"arq:job:{job_id}")
        await pool.zrem(settings.queue_name, job_id)
        assert await pool.enqueue_job("run_export", export, 1, _job_id=job_id, _queue_name=settings.queue_name)
    finally:
        await pool.aclose()
    start_worker()
    assert (await poll(client, ADMIN_TOKEN, export))["status"] == "ready"


async def test_export_creation_is_rate_limited_per_user(make_settings, demo_dataset, user_token):
    settings = make_settings(rate_limit=2)
    token = await user_token("hasty")
    async with TestClient(TestServer(create_app(settings))) as client:
        for _ in range(2):
            await create(client, token, "csv")
        response = await client.post("/api/v1/exports", json={"export_type": "csv"}, headers=headers(token))
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 61
        assert (await response.json())["error_code"] == "too_many_requests"
        other = await user_token("patient")
        await create(client, other, "csv")  # the limit is per user


async def test_access_log_has_no_signatures_or_tokens(settings, worker, demo_dataset, caplog):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    server = TestServer(create_app(settings))
    await server.start_server(access_log_class=AccessLogger)  # as `python -m api` runs it
    async with TestClient(server) as client:
        ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
        await download(client, ready["download_link"])
        await client.get(f"/api/v2/catalog/datasets?apikey={ADMIN_TOKEN}")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/downloads/" in logged and "/api/v2/catalog/datasets" in logged
    signature = ready["download_link"].split("signature=")[1]
    assert signature not in logged and ADMIN_TOKEN not in logged and "signature=" not in logged


async def test_a_duplicate_delivery_writes_one_file(settings, client, spawn_worker, demo_dataset, state):
    from domain.queue import RUN_EXPORT, arq_pool

    spawn_worker(), spawn_worker()
    pool = await arq_pool(settings.redis_url, settings.queue_name)
    try:
        export = export_id(await create(client, ADMIN_TOKEN, "csv"))
        for copy in ("a", "b"):  # the same attempt delivered twice more, to whichever worker is free
            await pool.enqueue_job(RUN_EXPORT, export, 1, _job_id=f"duplicate-{copy}-{export}")
        ready = await poll(client, ADMIN_TOKEN, export, timeout=60)
        await wait_for(lambda: _jobs_done(pool, [f"duplicate-a-{export}", f"duplicate-b-{export}"]), 30, "the duplicates to run")
    finally:
        await pool.aclose()
    assert ready["status"] == "ready"
    files = export_files(settings, export)
    assert len(files) == 1 and files[0].parent.name == "1"
    assert (await ExportRepo(state).get(export)).attempt == 1


async def _jobs_done(pool, job_ids: list[str]) -> bool:
    from arq.jobs import Job, JobStatus

    statuses = [await Job(job_id, pool).status() for job_id in job_ids]
    return all(status == JobStatus.complete for status in statuses)


async def test_a_poison_export_fails_after_n_attempts_and_others_finish(settings, client, spawn_worker, demo_dataset, tmp_path):
    poison = tmp_path / "poison.parquet"
    pq.write_table(demo.table(rows=2000).append_column("poison", pa.array(["x"] * 2000)), poison)
    await load_dataset(settings, poison, "poison")
    bad = export_id(await create(client, ADMIN_TOKEN, "csv", dataset_id="poison"))
    good = [export_id(await create(client, ADMIN_TOKEN, fmt)) for fmt in ("json", "csv", "jsonl")]
    # One export at a time per process: a crash then takes only the export that caused it (with
    # more jobs per worker, exports running beside a poison one lose attempts with it).
    poisoned = dict(EXPORTD_MAX_ATTEMPTS="3", EXPORTD_LEASE_SECONDS="2", EXPORTD_WORKER_JOBS="1")
    workers = [spawn_worker("tests.poison_worker", **poisoned)]
    deaths = 0

    async def settled():
        nonlocal deaths
        if workers[-1].poll() is not None:  # a process manager restarts what died
            deaths += 1
            workers.append(spawn_worker("tests.poison_worker", **poisoned))
        states = [(await poll(client, ADMIN_TOKEN, e, until=TERMINAL_OR_ANY))["status"] for e in [bad, *good]]
        return states if all(s in ("ready", "failed") for s in states) else None

    states = await wait_for(settled, 120, "every export to settle")
    assert states == ["failed", "ready", "ready", "ready"]
    failed = await poll(client, ADMIN_TOKEN, bad)
    assert "stopped its worker 3 times" in failed["detail"]
    assert deaths >= 3


async def test_killing_redis_mid_export_loses_nothing_acknowledged(make_settings, tmp_path, spawn_worker, big_events):
    with RedisServer(tmp_path / "killed-redis") as server:
        settings = make_settings(redis_url=server.url)
        await load_dataset(settings, big_events, "big-events")
        spawn_worker(SLOW, EXPORTD_REDIS_URL=server.url)
        async with TestClient(TestServer(create_app(settings))) as client:
            acknowledged = [export_id(await create(client, ADMIN_TOKEN, fmt, dataset_id="big-events")) for fmt in ("json", "csv")]
            await processing_with_progress(client, acknowledged[0])
            server.process.kill()  # SIGKILL: no clean shutdown
            server.process.wait(10)
            response = await client.get("/api/v1/exports", headers=headers(ADMIN_TOKEN))
            assert response.status == 503
            await asyncio.sleep(1)
            server.start()
            final = [await poll(client, ADMIN_TOKEN, e, timeout=120) for e in acknowledged]
    assert [e["status"] for e in final] == ["ready", "ready"], final


@pytest.mark.parametrize("path", [
    "/downloads/..%2F..%2Fsecret_key/x", "/downloads/x/..%2F..%2F..%2Fsecret_key?expires=9999999999&signature=abc",
    "/downloads/../secret_key", "/downloads/%2e%2e/%2e%2e/admin_token?expires=1&signature=x",
])
async def test_path_traversal_in_download_links_is_refused(client, path):
    response = await client.get(path)
    assert response.status in (403, 404)
    assert response.headers["Content-Type"].startswith("application/json")
    assert b"test-secret" not in await response.read()
