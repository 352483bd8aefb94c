"""No stale job in arq's queue after recovery, for real: a worker process killed with SIGKILL
mid-export (its job is never ended by arq), or frozen with SIGSTOP past its lease and then
woken. Recovery gives the export a new attempt and takes the dead attempt's job out of the
queue in the same compare-and-set; /health's queue then counts nothing once the export is
ready."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from domain import demo, keys
from domain.exports import ExportRepo
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.osdi import create, export_id, poll, wait_for

SLOW = "tests.slow_worker"
LEASE = 3  # seconds, so that recovery comes within a few seconds of the kill

pytestmark = pytest.mark.faults


@pytest.fixture(scope="session")
def long_events(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "long-events.parquet"
    pq.write_table(demo.table(rows=200_000, seed=5), path, row_group_size=20_000)
    return path


async def arq_keys_of(state, job_id: str) -> dict[str, bool]:
    """Where arq holds a job: its queue entry and its keys."""
    return {"queued": await state.zscore("exportd:queue", job_id) is not None,
            "job": bool(await state.exists(job_key_prefix + job_id)),
            "in_progress": bool(await state.exists(in_progress_key_prefix + job_id)),
            "retry": bool(await state.exists(retry_key_prefix + job_id))}


async def export_jobs_queued(state) -> list[str]:
    return [job for job in await state.zrange("exportd:queue", 0, -1) if job.startswith("export:")]


def nothing_queued(state):
    """A check that no export job is in the queue: arq takes a job out once its function has
    returned, just after the export it made ready is seen ready."""
    async def check() -> bool:
        return await export_jobs_queued(state) == []
    return check


async def running_with_progress(client, export: str) -> dict:
    async def check():
        body = await poll(client, ADMIN_TOKEN, export, until=("processing", "ready", "failed"), timeout=60)
        assert body["status"] == "processing", f"export ended before the test could interrupt it: {body}"
        return body if body["progress"]["records_done"] > 0 else None
    return await wait_for(check, 60, "the export to make progress")


async def health(client) -> dict:
    return await (await client.get("/health")).json()


async def test_a_killed_worker_s_job_leaves_the_queue_with_its_recovery(settings, client, state, worker_process,
                                                                       long_events):
    await load_dataset(settings, long_events, "long-events")
    first = worker_process(SLOW, EXPORTD_LEASE_SECONDS=str(LEASE))
    export = export_id(await create(client, ADMIN_TOKEN, "jsonl", dataset_id="long-events"))
    dead_job = keys.export_job_id(export, 1)
    await running_with_progress(client, export)
    assert await arq_keys_of(state, dead_job) == {"queued": True, "job": True, "in_progress": True, "retry": True}
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed_at = time.monotonic()
    worker_process(EXPORTD_LEASE_SECONDS=str(LEASE))
    exports = ExportRepo(state)

    async def recovered():  # the export given to attempt 2 (queued for it, or already running it)
        current = await exports.get(export)
        return current if current.lapses == 1 else None
    current = await wait_for(recovered, 30, "recovery to give the export a new attempt")
    recovered_after = time.monotonic() - killed_at
    # the same compare-and-set took the dead job out: it is gone the moment recovery is seen
    assert await arq_keys_of(state, dead_job) == {"queued": False, "job": False, "in_progress": False, "retry": False}
    assert current.status in ("queued", "processing", "ready")
    ready = await poll(client, ADMIN_TOKEN, export, timeout=90)
    assert ready["status"] == "ready" and ready["records_count"] == 200_000
    await wait_for(nothing_queued(state), 15, "the queue to hold no job (the ready attempt's own leaves as it ends)")
    async def drained():
        body = await health(client)
        return body if body["queue_depth"] == 0 else None
    body = await wait_for(drained, 5, "/health's queue to be empty")
    assert body["oldest_queued_seconds"] == 0 and body["status"] == "ok", body
    print(f"\nkilled worker's job gone {recovered_after:.1f} s after the SIGKILL (lease {LEASE} s), "
          "in the recovery's own compare-and-set")


async def test_a_frozen_worker_woken_after_recovery_leaves_nothing_behind(settings, client, state, worker_process,
                                                                         long_events):
    """SIGSTOP past the lease: recovery gives the export to another worker and removes the
    frozen attempt's job; woken, the frozen worker finds its attempt superseded, stops, and its
    arq ends the job without putting anything back. Each outcome is counted once."""
    await load_dataset(settings, long_events, "long-events")
    frozen = worker_process(SLOW, EXPORTD_LEASE_SECONDS=str(LEASE))
    export = export_id(await create(client, ADMIN_TOKEN, "csv", dataset_id="long-events"))
    await running_with_progress(client, export)
    frozen.send_signal(signal.SIGSTOP)
    worker_process(EXPORTD_LEASE_SECONDS=str(LEASE))
    exports = ExportRepo(state)

    async def recovered():
        return (await exports.get(export)).lapses == 1
    await wait_for(recovered, 30, "recovery to give the export a new attempt")
    assert (await arq_keys_of(state, keys.export_job_id(export, 1)))["queued"] is False
    frozen.send_signal(signal.SIGCONT)
    ready = await poll(client, ADMIN_TOKEN, export, timeout=90)
    assert ready["status"] == "ready" and ready["records_count"] == 200_000
    async def first_attempt_ended():  # its arq keeps the job's result: the job ran to its end
        return await state.exists(f"arq:result:{keys.export_job_id(export, 1)}")
    await wait_for(first_attempt_ended, 30, "the woken worker to end its job")
    assert frozen.poll() is None  # alive, and it went on
    await wait_for(nothing_queued(state), 15, "the queue to hold no job (the ready attempt's own leaves as it ends)")
    assert not await state.exists(in_progress_key_prefix + keys.export_job_id(export, 1))
    assert (await health(client))["queue_depth"] == 0
    attempts = sorted(p.parent.name for p in (settings.data_dir / "exports" / export).rglob("*") if p.is_file())
    assert attempts == ["2"]  # the woken attempt published nothing
    metrics = await (await client.get("/metrics")).text()
    assert 'exportd_exports_created_total{format="csv"} 1' in metrics
    assert 'exportd_exports_ready_total{format="csv"} 1' in metrics
    assert 'exportd_export_duration_seconds_count{format="csv"} 1' in metrics


async def test_the_sweep_removes_queued_jobs_that_can_do_nothing(settings, client, state, demo_dataset):
    """The backstop for what recovery never sees: a killed worker's job whose export was
    deleted meanwhile (deletion drops the lease), a cron run whose worker died. Jobs that can
    still run their export stay, however long they have waited."""
    from worker.settings import shutdown, startup
    from worker.sweep import STALE_JOB_GRACE, sweep

    waiting, deleted = [export_id(await create(client, ADMIN_TOKEN, "csv", query={"limit": n})) for n in (1, 2)]
    exports = ExportRepo(state)
    await exports.transition(deleted, "processing", expect=("queued",), attempt=1)  # as a worker took it, then died
    await state.set(in_progress_key_prefix + keys.export_job_id(deleted, 1), "1")
    assert (await client.delete(f"/api/v1/exports/{deleted}", headers={"OSDI-API-Token": ADMIN_TOKEN})).status == 200
    dead_cron = "cron:recover:1000"
    await state.zadd("exportd:queue", {dead_cron: 1000})
    await state.set(in_progress_key_prefix + dead_cron, "1")
    long_ago = (time.time() - STALE_JOB_GRACE - 60) * 1000
    for job in (keys.export_job_id(waiting, 1), keys.export_job_id(deleted, 1)):
        await state.zadd("exportd:queue", {job: long_ago}, xx=True)  # as if queued 11 minutes ago
    ctx = {"settings": settings}
    await startup(ctx)
    try:
        assert (await sweep(ctx))["stale_jobs_removed"] == 2
    finally:
        await shutdown(ctx)
    assert await export_jobs_queued(state) == [keys.export_job_id(waiting, 1)]
    assert await arq_keys_of(state, keys.export_job_id(deleted, 1)) == {
        "queued": False, "job": False, "in_progress": False, "retry": False}
    assert not await state.exists(in_progress_key_prefix + dead_cron)
    assert (await health(client))["queue_depth"] == 1  # the export still waiting for a worker
