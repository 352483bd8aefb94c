"""The export's life on a real queue: approval and rejection, cancellation mid-write, expiry,
idempotent jobs, and two workers sharing one queue."""
from __future__ import annotations

import asyncio
import time
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from arq.jobs import Job
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from domain import demo, keys, queue
from domain.exports import ExportRepo
from tests.conftest import ADMIN_TOKEN, load_dataset, stored_keys
from tests.osdi import create, download, export_id, headers, poll
from worker import writing
from worker.export_job import run_export
from worker.settings import shutdown, startup


def export_files(settings, export: str) -> list[str]:
    """The keys of the export's stored files (exports/<id>/<attempt>/<name>)."""
    return stored_keys(settings, f"exports/{export}")


def partial_files(settings) -> list[Path]:
    return list((settings.data_dir / ".partial").iterdir())


@pytest.fixture(scope="session")
def big_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big-events.parquet"
    pq.write_table(demo.table(rows=400_000, seed=7), path, row_group_size=20_000)
    return path


async def test_approval_and_rejection(make_settings, start_worker, demo_dataset, user_token):
    settings = make_settings(approval_rows=100)
    start_worker(settings)
    erin = await user_token("erin")
    async with TestClient(TestServer(create_app(settings))) as client:
        waiting = await create(client, erin, "csv")
        assert waiting["status"] == "pending_approval"
        assert "100" in waiting["detail"]
        other = await create(client, erin, "json")

        forbidden = await client.post(f"/api/v1/exports/{export_id(waiting)}/approve", headers=headers(erin))
        assert forbidden.status == 403 and (await forbidden.json())["error_code"] == "forbidden"

        approved = await client.post(f"/api/v1/exports/{export_id(waiting)}/approve", headers=headers(ADMIN_TOKEN))
        body = await approved.json()
        assert approved.status == 200 and body["status"] == "queued" and body["approved_date"].endswith("Z")
        ready = await poll(client, erin, export_id(waiting))
        assert ready["status"] == "ready" and ready["records_count"] == demo.ROWS

        no_detail = await client.post(f"/api/v1/exports/{export_id(other)}/reject", json={}, headers=headers(ADMIN_TOKEN))
        assert no_detail.status == 400
        rejected = await client.post(f"/api/v1/exports/{export_id(other)}/reject",
                                     json={"detail": "Too large for a public export."}, headers=headers(ADMIN_TOKEN))
        assert rejected.status == 200
        seen = await poll(client, erin, export_id(other))
        assert seen["status"] == "rejected" and seen["detail"] == "Too large for a public export."
        again = await client.post(f"/api/v1/exports/{export_id(other)}/approve", headers=headers(ADMIN_TOKEN))
        assert again.status == 409 and (await again.json())["error_code"] == "conflict"

        admins_own = await create(client, ADMIN_TOKEN, "jsonl")
        assert admins_own["status"] == "queued"  # administrators need no approval


def slowed(monkeypatch, seconds: float = 0.05) -> None:
    """The in-process worker waits `seconds` before each batch it writes, as tests/slow_worker.py does."""
    batches_for = writing.batches_for

    def slow(scan):
        with closing(batches_for(scan)) as batches:
            for batch in batches:
                time.sleep(seconds)
                yield batch
    monkeypatch.setattr(writing, "batches_for", slow)


@pytest.mark.backends("local", "s3")
async def test_delete_while_processing_stops_the_worker_and_leaves_no_file(settings, client, worker, big_file,
                                                                           monkeypatch):
    slowed(monkeypatch)  # else the export can finish before its first progress report
    await load_dataset(settings, big_file, "big-events")
    created = await create(client, ADMIN_TOKEN, "json", dataset_id="big-events")
    export = export_id(created)
    running = await poll(client, ADMIN_TOKEN, export, until=("processing",))
    deadline = time.monotonic() + 30
    while running["progress"]["records_done"] == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
        running = await poll(client, ADMIN_TOKEN, export, until=("processing", "ready"))
    assert running["status"] == "processing", "the export finished before it could be cancelled"
    assert running["progress"]["records_total"] == 400_000

    response = await client.delete(f"/api/v1/exports/{export}", headers=headers(ADMIN_TOKEN))
    assert response.status == 200
    pool = await queue.arq_pool(settings.redis_url)
    try:
        result = await Job(f"export:{export}:1", pool, _queue_name=settings.queue_name,
                           _deserializer=queue.deserialize).result(timeout=30)
    finally:
        await pool.aclose()
    assert result["outcome"] in ("cancelled", "discarded")
    assert export_files(settings, export) == []
    assert partial_files(settings) == []
    assert (await client.get(f"/api/v1/exports/{export}", headers=headers(ADMIN_TOKEN))).status == 404


@pytest.mark.backends("local", "s3")
async def test_expired_exports_lose_their_file_and_links_answer_410(make_settings, start_worker, demo_dataset):
    settings = make_settings(export_ttl=1)
    start_worker(settings, cron_jobs=[])  # the sweeps below only: the minute's cron sweep would race them
    async with TestClient(TestServer(create_app(settings))) as client:
        ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
        assert ready["status"] == "ready"
        export = export_id(ready)
        assert export_files(settings, export)
        await asyncio.sleep(1.5)

        status, _, _ = await download(client, ready["download_link"])
        assert status == 410  # the link itself is past its time
        pool = await queue.arq_pool(settings.redis_url)
        try:
            job = await pool.enqueue_job(queue.SWEEP, _queue_name=settings.queue_name)
            assert (await job.result(timeout=20))["expired"] == 1
            second = await pool.enqueue_job(queue.SWEEP, _queue_name=settings.queue_name)
            assert (await second.result(timeout=20))["expired"] == 0  # expired once only
        finally:
            await pool.aclose()
        expired = await poll(client, ADMIN_TOKEN, export)
        assert expired["status"] == "expired"
        assert "download_link" not in expired
        assert export_files(settings, export) == []


async def test_any_link_of_an_expired_export_answers_410(settings, client, worker, demo_dataset, state):
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
    export = export_id(ready)
    assert await ExportRepo(state).transition(export, "expired", expect=("ready",))
    status, body, _ = await download(client, ready["download_link"])  # signature still good, export expired
    assert status == 410


async def test_an_export_whose_dataset_is_gone_fails_with_a_reason(settings, client, demo_dataset, state):
    export = export_id(await create(client, ADMIN_TOKEN, "csv"))  # no worker yet: it stays queued
    await state.delete(keys.dataset("demo-events"))
    ctx = {"settings": settings}
    await startup(ctx)
    try:
        outcome = await run_export(ctx, export, 1, demo_dataset)
    finally:
        await shutdown(ctx)
    assert outcome["outcome"] == "failed" and "no dataset 'demo-events'" in outcome["detail"]
    failed = await poll(client, ADMIN_TOKEN, export)
    assert failed["status"] == "failed" and "no dataset 'demo-events'" in failed["detail"]


@pytest.mark.backends("local", "s3")
async def test_the_job_is_idempotent(settings, client, worker, demo_dataset):
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
    export = export_id(ready)
    files = export_files(settings, export)
    assert len(files) == 1
    ctx = {"settings": settings}
    await startup(ctx)
    try:
        for attempt in (1, 2):  # the same attempt delivered again, or a stray later one: nothing happens
            again = await run_export(ctx, export, attempt, demo_dataset)
            assert again["outcome"].startswith("not for attempt")
    finally:
        await shutdown(ctx)
    assert export_files(settings, export) == files
    after = await poll(client, ADMIN_TOKEN, export)
    assert after["file_size"] == ready["file_size"] and after["status"] == "ready"

    pool = await queue.arq_pool(settings.redis_url)
    try:
        assert await pool.enqueue_job(queue.RUN_EXPORT, export, 1, _job_id=f"export:{export}:1",
                                      _queue_name=settings.queue_name) is None  # same job id: not queued twice
    finally:
        await pool.aclose()


@pytest.mark.backends("local", "s3")
async def test_two_workers_share_one_queue_and_do_each_export_once(settings, client, start_worker, demo_dataset):
    first, second = start_worker(), start_worker()
    formats = ["csv", "json", "jsonl"] * 3  # each with its own limit, so that none shares another's file
    exports = [export_id(await create(client, ADMIN_TOKEN, fmt, query={"limit": 5000 + i})) for i, fmt in enumerate(formats)]
    for export in exports:
        ready = await poll(client, ADMIN_TOKEN, export)
        assert ready["status"] == "ready"
        files = export_files(settings, export)
        assert [key.split("/")[2] for key in files] == ["1"]  # a single attempt wrote a single file
    # the export turns ready inside the job, a moment before arq counts the job complete
    deadline = time.monotonic() + 10
    while first.jobs_complete + second.jobs_complete < len(exports) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert first.jobs_complete + second.jobs_complete >= len(exports)  # exports, and the cron sweeps
    assert first.jobs_failed == second.jobs_failed == 0


async def test_a_missing_dataset_fails_the_export_with_a_detail(settings, client, worker, demo_dataset, state):
    from domain import keys

    export = export_id(await create(client, ADMIN_TOKEN, "csv"))
    await poll(client, ADMIN_TOKEN, export)  # let it finish, then run another whose dataset vanished
    created = await create(client, ADMIN_TOKEN, "json")
    await state.delete(keys.dataset("demo-events"))
    failed = await poll(client, ADMIN_TOKEN, export_id(created))
    if failed["status"] == "ready":
        pytest.skip("the worker finished before the dataset was removed")
    assert failed["status"] == "failed"
    assert "demo-events" in failed["detail"]


@pytest.mark.backends("local", "s3")
async def test_identical_exports_share_one_file_until_the_last_goes(settings, client, worker, demo_dataset, user_token):
    alice, bob = await user_token("alice"), await user_token("bob")
    first = await poll(client, alice, export_id(await create(client, alice, "csv", options={"delimiter": ","})))
    assert first["status"] == "ready"
    second = await create(client, bob, "csv", options={"delimiter": ","})
    assert second["status"] == "ready"  # born ready: the same dataset version, query, format and options
    assert second["file_size"] == first["file_size"] and second["records_count"] == first["records_count"]
    different = await create(client, bob, "csv", options={"delimiter": ";"})
    assert different["status"] == "queued"
    _, body_first, _ = await download(client, first["download_link"])
    _, body_second, _ = await download(client, second["download_link"])
    assert body_first == body_second and len(export_files(settings, export_id(first))) == 1

    response = await client.delete(f"/api/v1/exports/{export_id(first)}", headers=headers(alice))
    assert response.status == 200
    status, body, _ = await download(client, second["download_link"])
    assert status == 200 and body == body_second  # the other user's link still works
    await client.delete(f"/api/v1/exports/{export_id(second)}", headers=headers(bob))
    assert export_files(settings, export_id(first)) == []  # the last one out took the file
    assert (await create(client, bob, "csv", options={"delimiter": ","}))["status"] == "queued"


async def test_a_running_export_reads_the_version_it_started_with(settings, client, worker, big_file, tmp_path):
    await load_dataset(settings, big_file, "big-events")
    export = export_id(await create(client, ADMIN_TOKEN, "jsonl", dataset_id="big-events"))
    running = await poll(client, ADMIN_TOKEN, export, until=("processing", "ready"))
    assert running["status"] == "processing", "the export finished before the dataset could change"
    newer = tmp_path / "newer.parquet"
    pq.write_table(demo.table(rows=10, seed=3), newer)
    await load_dataset(settings, newer, "big-events")  # a new version is published meanwhile
    ready = await poll(client, ADMIN_TOKEN, export)
    assert ready["status"] == "ready" and ready["records_count"] == 400_000
    _, body, _ = await download(client, ready["download_link"])
    assert len(body.splitlines()) == 400_000
    later = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "jsonl", dataset_id="big-events")))
    assert later["records_count"] == 10  # later exports see the new version
