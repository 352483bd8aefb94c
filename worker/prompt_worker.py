"""arq's Worker, starting the next job as soon as one of its slots frees, and claiming jobs in
one round trip.

arq looks at the queue every poll_delay, and a look starts jobs only into free slots: a job
that ended between two looks left its slot empty until the next one. A worker of 2 slots ran
at most 2 jobs a poll_delay — 40 small exports a second at 50 ms, however fast each was — and
a second worker added little. Here the wait between looks ends early when a job ends, so a
freed slot takes the next queued job at once; an idle worker still looks every poll_delay.

A look also claims in one round trip. A running job stays at the head of the queue until it
ends, and arq claimed the listed jobs one at a time (WATCH, EXISTS, ZSCORE, then MULTI/EXEC:
four round trips, three of them for each job already running here or on another worker), then
waited for a slot with the rest of the list, which went stale meanwhile. Here one Lua script
does the same checks and claims (no in-progress marker, still queued, due) for as many listed
jobs as there are free slots, atomically; the next look lists afresh.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

# KEYS[1]: the queue. ARGV: now (ms), the in-progress marker's lifetime (ms), how many to claim,
# the marker's key prefix, then the job ids listed. Returns the claimed ids and their scores.
CLAIM = """
local claimed = {}
for i = 5, #ARGV do
  if #claimed >= 2 * tonumber(ARGV[3]) then break end
  local marker = ARGV[4] .. ARGV[i]
  if redis.call('EXISTS', marker) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
    if score and tonumber(score) <= tonumber(ARGV[1]) then
      redis.call('PSETEX', marker, ARGV[2], '1')
      table.insert(claimed, ARGV[i])
      table.insert(claimed, score)
    end
  end
end
return claimed
"""


class PromptWorker(Worker):
    def __init__(self, *args: Any, poll_delay: float = 0.5, **kwargs: Any):
        super().__init__(*args, poll_delay=0, **kwargs)  # arq's loop then never sleeps on its own
        self.look_every = poll_delay
        self._slot_freed = asyncio.Event()
        self._claim = None

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def _poll_iteration(self) -> None:
        self._slot_freed.clear()  # a job ending during the look below sets it again: no wait then
        await super()._poll_iteration()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.look_every):
                await self._slot_freed.wait()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim up to the free slots' worth of `job_ids` and run them, as arq's start_jobs does
        one by one."""
        free = self.max_jobs - self.job_counter
        if not job_ids or free <= 0:
            return
        if self._claim is None:
            self._claim = self.pool.register_script(CLAIM)
        claimed = await self._claim(keys=[self.queue_name], args=[
            timestamp_ms(), int(self.in_progress_timeout_s * 1000), free, in_progress_key_prefix, *job_ids])
        for job_id, score in zip(claimed[::2], claimed[1::2]):
            await self.sem.acquire()  # a free slot: no wait
            self.job_counter += 1
            job_id = job_id.decode()
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task
