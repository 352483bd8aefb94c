"""arq's Worker, starting the next job as soon as one of its slots frees, and claiming jobs in
one round trip.

arq looks at the queue every poll_delay, and a look starts jobs only into free slots: a job
that ended between two looks left its slot empty until the next one. A worker of 2 slots ran
at most 2 jobs a poll_delay — 40 small exports a second at 50 ms, however fast each was — and
a second worker added little. Here the wait between looks ends early when a job ends, so a
freed slot takes the next queued job at once; an idle worker still looks every poll_delay.

A look is also one round trip. arq listed the due jobs (ZRANGEBYSCORE), then claimed them one
at a time (WATCH, EXISTS, ZSCORE, then MULTI/EXEC: four round trips, three of them for each job
already running here or on another worker, as a running job stays at the head of the queue
until it ends), then waited for a slot with the rest of the list, which went stale meanwhile.
Here one Lua script lists the due jobs and claims as many as there are free slots, those with
no in-progress marker, atomically; the next look lists afresh.

A job runs alone for its first `alone_for` seconds: only once it has run that long does the
worker take another beside it, up to max_jobs. Short jobs (most exports) thus run one at a
time, and a worker keeps about one core busy; two jobs at once had kept 1.2 cores busy (one's
Python beside the other's native code), so two workers on two cores drained only 1.5 times
what one did, as they took cores from each other and from Redis. A long job (a large export,
an import) still does not hold back the queue: after `alone_for` the next job starts beside it.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

# KEYS[1]: the queue. ARGV: now (ms), the in-progress marker's lifetime (ms), how many to claim,
# the marker's key prefix, then where to start listing and how many to list at most. Returns the
# claimed ids and their scores. The due ids are listed a few at a time, more each time, until
# enough are claimed: listing all 100 (arq's queue_read_limit) for every claim was a tenth of
# Redis' time an export, when the ids wanted are nearly always among the first.
CLAIM = """
local claimed = {}
local wanted, first, limit = 2 * tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
local listed, step = 0, 4
while listed < limit and #claimed < wanted do
  local n = math.min(step, limit - listed)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', first + listed, n)
  for i = 1, #due, 2 do
    if #claimed >= wanted then break end
    local marker = ARGV[4] .. due[i]
    if redis.call('EXISTS', marker) == 0 then
      redis.call('PSETEX', marker, ARGV[2], '1')
      table.insert(claimed, due[i])
      table.insert(claimed, due[i + 1])
    end
  end
  if #due < 2 * n then break end
  listed, step = listed + n, step * 2
end
return claimed
"""


class PromptWorker(Worker):
    def __init__(self, *args: Any, poll_delay: float = 0.5, alone_for: float = 0.0, **kwargs: Any):
        super().__init__(*args, poll_delay=0, **kwargs)  # arq's loop then never sleeps on its own
        self.look_every = poll_delay
        self.alone_for = alone_for
        self._started: dict[str, float] = {}  # when each running job started (monotonic)
        self._slot_freed = asyncio.Event()
        self._claim = None

    def free_slots(self) -> int:
        """Jobs a look may start: one while none runs; beside running jobs, one more for each
        that has run `alone_for` seconds; never past max_jobs (with `alone_for` 0, max_jobs)."""
        if self.alone_for <= 0:
            return self.max_jobs - self.job_counter
        now = time.monotonic()
        long_running = sum(now - started >= self.alone_for for started in self._started.values())
        return max(0, min(self.max_jobs, 1 + long_running) - self.job_counter)

    def _ended(self, job_id: str) -> None:
        self._started.pop(job_id, None)
        self._release_sem_dec_counter_on_complete()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def _poll_iteration(self) -> None:
        self._slot_freed.clear()  # a job ending during the look below sets it again: no wait then
        await self._look()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.look_every):
                await self._slot_freed.wait()

    async def _look(self) -> None:
        """arq's Worker._poll_iteration (0.26 to 0.28) with its listing and claiming in one
        script: start what the free slots take, cancel aborted jobs, reap ended tasks, beat."""
        count = self.queue_read_limit
        if self.burst and self.max_burst_jobs >= 0:
            burst_jobs_remaining = self.max_burst_jobs - self._jobs_started()
            if burst_jobs_remaining < 1:
                return
            count = min(burst_jobs_remaining, count)
        if self.allow_pick_jobs and self.free_slots():
            await self._claim_and_start(count)
        if self.allow_abort_jobs:
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # an error of run_job's own is raised here, as arq does
        await self.heart_beat()

    async def _claim_and_start(self, listed: int) -> None:
        """Claim up to the free slots' worth of the first `listed` due jobs and run them, as
        arq's start_jobs does one by one."""
        free = self.free_slots()
        if self._claim is None:
            self._claim = self.pool.register_script(CLAIM)
        claimed = await self._claim(keys=[self.queue_name], args=[
            timestamp_ms(), int(self.in_progress_timeout_s * 1000), free, in_progress_key_prefix,
            self._queue_read_offset, listed])
        for job_id, score in zip(claimed[::2], claimed[1::2]):
            await self.sem.acquire()  # a free slot: no wait
            self.job_counter += 1
            job_id = job_id.decode()
            self._started[job_id] = time.monotonic()
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _, job_id=job_id: self._ended(job_id))
            self.tasks[job_id] = task
