"""/metrics counts each export once per outcome, for real: a burst of 200 concurrent POSTs
(half of them sharing ready files, so born ready) on two worker processes, duplicate and
replayed job deliveries, concurrent failures and concurrent expiry sweeps. The counters must
equal what Redis says happened, and ready never exceeds created, at any moment."""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta

from arq.jobs import Job, JobStatus

from domain import keys, queue
from domain.exports import Export, ExportRepo, export_dir
from domain.timeutil import now
from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, export_id, poll, wait_for
from worker.export_job import _fail
from worker.settings import shutdown, startup
from worker.sweep import sweep

BURST = 200


async def samples(client) -> dict[str, float]:
    text = await (await client.get("/metrics")).text()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if not line.startswith("#")}


def total(metrics: dict[str, float], name: str) -> dict[str, float]:
    """A counter's samples by format."""
    prefix = f'{name}{{format="'
    return {key[len(prefix):-2]: value for key, value in metrics.items() if key.startswith(prefix)}


async def truth(exports: ExportRepo) -> dict[str, Counter]:
    """What happened, from the exports themselves: created, ready, files written (a ready
    export serving a file under its own directory wrote it) and their records, by format."""
    _, everything = await exports.page(None, 1, 10_000)
    out: dict[str, Counter] = {name: Counter() for name in ("created", "ready", "written", "records")}
    for export in everything:
        out["created"][export.export_type] += 1
        if export.status == "ready":
            out["ready"][export.export_type] += 1
            if export.file_key.startswith(export_dir(export.id) + "/"):
                out["written"][export.export_type] += 1
                out["records"][export.export_type] += export.records_done
    return out


async def test_a_burst_of_posts_and_duplicate_jobs_count_each_export_once(settings, client, state, demo_dataset,
                                                                          worker_process):
    worker_process(EXPORTD_WORKER_ALONE_MS="0"), worker_process(EXPORTD_WORKER_ALONE_MS="0")
    pool = await queue.arq_pool(settings.redis_url, settings.queue_name)
    exports = ExportRepo(state)
    shared = [("csv", n) for n in range(1, 11)] + [("json", n) for n in range(1, 11)]
    fresh = [("csv", n) for n in range(11, 21)] + [("jsonl", n) for n in range(11, 21)]
    duplicates: list[str] = []
    scrapes: list[dict[str, float]] = []
    try:
        for export_type, limit in shared:  # ready files for half the burst to share
            ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, export_type,
                                                                           query={"limit": limit})))
            assert ready["status"] == "ready"

        async def post(n: int) -> str:
            export_type, limit = (shared if n % 2 else fresh)[n // 2 % 20]
            export = export_id(await create(client, ADMIN_TOKEN, export_type, query={"limit": limit}))
            if n % 10 == 0:  # the same attempt delivered twice more, racing the real job
                for copy in ("a", "b"):
                    job_id = f"duplicate-{copy}-{export}"
                    await pool.enqueue_job(queue.RUN_EXPORT, export, 1, None, _job_id=job_id)
                    duplicates.append(job_id)
            return export

        stop = asyncio.Event()

        async def scrape() -> None:
            while not stop.is_set():
                scrapes.append(await samples(client))
                await asyncio.sleep(0.02)

        scraper = asyncio.create_task(scrape())
        started = time.monotonic()
        burst = await asyncio.gather(*(post(n) for n in range(BURST)))
        posted = time.monotonic() - started
        for export in burst:
            assert (await poll(client, ADMIN_TOKEN, export, timeout=120))["status"] == "ready"
        stop.set()
        await scraper

        async def duplicates_done():
            statuses = [await Job(job_id, pool).status() for job_id in duplicates]
            return all(status == JobStatus.complete for status in statuses)
        await wait_for(duplicates_done, 60, "the duplicate jobs to run")
        # a replay of an attempt long finished, as a redelivery after a restore would be
        replays = [f"replay-{export}" for export in burst[:10]]
        for job_id, export in zip(replays, burst[:10]):
            await pool.enqueue_job(queue.RUN_EXPORT, export, 1, None, _job_id=job_id)
        await wait_for(lambda: _all_complete(pool, replays), 60, "the replays to run")
    finally:
        await pool.aclose()

    happened = await truth(exports)
    assert sum(happened["created"].values()) == len(shared) + BURST
    assert happened["ready"] == happened["created"]
    own_files = [(await exports.get(export)).file_key.startswith(export_dir(export) + "/") for export in burst]
    born_ready = own_files.count(False)  # shared a file rather than wrote one
    assert born_ready >= BURST // 2  # the shared half at least
    metrics = await samples(client)
    assert total(metrics, "exportd_exports_created_total") == dict(happened["created"])
    assert total(metrics, "exportd_exports_ready_total") == dict(happened["ready"])
    assert total(metrics, "exportd_export_duration_seconds_count") == dict(happened["written"])
    assert total(metrics, "exportd_records_written_total") == dict(happened["records"])
    assert set(total(metrics, "exportd_exports_failed_total").values()) <= {0}
    for seen in scrapes:  # at every moment of the burst
        created, ready = total(seen, "exportd_exports_created_total"), total(seen, "exportd_exports_ready_total")
        assert all(ready[f] <= created.get(f, 0) for f in ready), seen
    print(f"\n{BURST} concurrent POSTs in {posted:.1f} s ({born_ready} born ready), {len(duplicates)} duplicate "
          f"and {len(replays)} replayed jobs, {len(scrapes)} scrapes: counts equal the transitions")


async def _all_complete(pool, job_ids: list[str]) -> bool:
    return all([await Job(job_id, pool).status() == JobStatus.complete for job_id in job_ids])


async def test_concurrent_failures_and_expiry_sweeps_count_once(settings, client, state, demo_dataset, start_worker):
    exports = ExportRepo(state)
    failing = Export.new(owner="admin", name="x", export_type="csv", dataset_id="demo-events", resource_href="x")
    await exports.create(failing)
    await exports.transition(failing.id, "queued", expect=("initializing",))
    started = await exports.start(failing.id, 1)
    outcomes = await asyncio.gather(*(_fail(exports, started, 1, f"failure {n}") for n in range(20)))
    assert [o["outcome"] for o in outcomes].count("failed") == 1

    start_worker()
    expiring = [export_id(await create(client, ADMIN_TOKEN, "csv", query={"limit": n})) for n in range(1, 6)]
    for export in expiring:
        assert (await poll(client, ADMIN_TOKEN, export))["status"] == "ready"
        await exports.update(export, expect=("ready",), expires_at=now() - timedelta(seconds=1))
        await state.zadd(keys.EXPORTS_READY, {export: time.time() - 1})
    contexts = [{"settings": settings} for _ in range(3)]
    for ctx in contexts:
        await startup(ctx)
    try:  # three workers' sweeps at the same moment
        swept = await asyncio.gather(*(sweep(ctx) for ctx in contexts))
    finally:
        for ctx in contexts:
            await shutdown(ctx)
    assert sum(s["expired"] for s in swept) == len(expiring)
    metrics = await samples(client)
    assert metrics['exportd_exports_failed_total{format="csv"}'] == 1
    assert metrics['exportd_exports_expired_total{format="csv"}'] == len(expiring)
    assert metrics['exportd_exports_created_total{format="csv"}'] == 1 + len(expiring)
