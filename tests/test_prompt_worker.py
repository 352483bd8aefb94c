"""PromptWorker's look at the queue (worker/prompt_worker.py): one script lists the due jobs and
claims as many as the free slots take, skipping jobs another worker runs and jobs not yet due;
workers looking at once never claim a job twice; a freed slot takes the next job at once."""
from __future__ import annotations

import asyncio
import time

from arq.connections import ArqRedis, RedisSettings
from arq.constants import in_progress_key_prefix

from worker.prompt_worker import PromptWorker

STARTED: list[int] = []


async def hold(ctx, n: int) -> int:
    STARTED.append(n)
    await asyncio.sleep(ctx.get("hold_for", 0.3))
    return n


def a_worker(settings, **overrides) -> PromptWorker:
    kwargs = dict(functions=[hold], redis_settings=RedisSettings.from_dsn(settings.redis_url), queue_name="test:queue",
                  handle_signals=False, poll_delay=5, max_jobs=2, keep_result=0)
    return PromptWorker(**{**kwargs, **overrides})


async def enqueue(settings, count: int, **options) -> list[str]:
    pool = ArqRedis.from_url(settings.redis_url)
    try:
        jobs = [await pool.enqueue_job("hold", n, _queue_name="test:queue", **options) for n in range(count)]
        return [job.job_id for job in jobs]
    finally:
        await pool.aclose()


async def test_a_look_claims_only_what_the_free_slots_take_of_the_due_jobs_nobody_runs(settings):
    STARTED.clear()
    due = await enqueue(settings, 4)
    await enqueue(settings, 1, _defer_by=60)  # not due for a minute
    worker = a_worker(settings)
    pool = ArqRedis.from_url(settings.redis_url)
    worker._pool = pool  # looked with by hand, not run
    try:
        await pool.psetex(in_progress_key_prefix + due[0], 60_000, b"1")  # another worker runs it
        await worker._look()
        first = set(worker.tasks)
        assert len(first) == 2 and first < set(due[1:])  # two slots: two of the due ones nobody runs
        await asyncio.gather(*worker.tasks.values())
        await worker._look()
        assert set(worker.tasks) == set(due[1:]) - first  # the last due one; the deferred one waits
        await asyncio.gather(*worker.tasks.values())
        assert sorted(STARTED) == [1, 2, 3]
    finally:
        for task in worker.tasks.values():
            task.cancel()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await pool.aclose()


async def test_a_look_lists_past_many_running_jobs_up_to_the_read_limit(settings):
    """The claim lists the due ids a few at a time (4, 8, 16, …): jobs running elsewhere at
    the head of the queue, more than one listing holds, are passed over, as far as
    queue_read_limit reaches and no further."""
    STARTED.clear()
    await enqueue(settings, 14)
    pool = ArqRedis.from_url(settings.redis_url)
    worker = a_worker(settings)
    worker._pool = pool
    try:
        due = [job_id.decode() for job_id in await pool.zrange("test:queue", 0, -1)]  # in queue order
        for job_id in due[:11]:  # run by other workers
            await pool.psetex(in_progress_key_prefix + job_id, 60_000, b"1")
        worker.queue_read_limit = 11
        await worker._look()
        assert worker.tasks == {}  # the first 11 listed are all running
        worker.queue_read_limit = 13
        await worker._look()
        assert set(worker.tasks) == set(due[11:13])
        await asyncio.gather(*worker.tasks.values())
        assert len(STARTED) == 2
    finally:
        for task in worker.tasks.values():
            task.cancel()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await pool.aclose()


async def test_workers_looking_together_never_claim_a_job_twice(settings):
    STARTED.clear()
    await enqueue(settings, 30)
    workers = [a_worker(settings, max_jobs=3, poll_delay=0.05, burst=True, ctx={"hold_for": 0.01}) for _ in range(3)]
    await asyncio.gather(*(w.async_run() for w in workers))
    assert sorted(STARTED) == list(range(30))
    for w in workers:
        await w.close()


async def test_a_freed_slot_takes_the_next_job_without_waiting_for_the_next_look(settings):
    STARTED.clear()
    await enqueue(settings, 6)
    worker = a_worker(settings, max_jobs=1, poll_delay=30, burst=True, ctx={"hold_for": 0.01})
    started = time.monotonic()
    await worker.async_run()
    await worker.close()
    assert sorted(STARTED) == list(range(6)) and time.monotonic() - started < 10  # six looks 30 s apart would take minutes


async def test_a_job_runs_alone_until_it_has_run_long_then_one_more_starts_beside_it(settings):
    STARTED.clear()
    await enqueue(settings, 4)
    worker = a_worker(settings, max_jobs=2, alone_for=0.4, ctx={"hold_for": 5})
    pool = ArqRedis.from_url(settings.redis_url)
    worker._pool = pool  # looked with by hand, not run
    try:
        await worker._look()
        await worker._look()
        assert len(worker.tasks) == 1 and worker.free_slots() == 0  # a short job runs alone
        await asyncio.sleep(0.5)
        assert worker.free_slots() == 1
        await worker._look()
        assert len(worker.tasks) == 2  # the first has run long: the next starts beside it
        await asyncio.sleep(0.5)
        await worker._look()
        assert len(worker.tasks) == 2 and worker.free_slots() == 0  # never past max_jobs
    finally:
        for task in worker.tasks.values():
            task.cancel()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await pool.aclose()
    assert worker._started == {}  # forgotten as they ended
