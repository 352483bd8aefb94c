"""arq's Worker, starting the next job as soon as one of its slots frees, claiming jobs in one
round trip, and sharing its slots fairly between the owners of the queued exports.

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

from domain import keys

# KEYS[1]: the queue, KEYS[2]: when each owner was last served (a sorted set). ARGV: now (ms), the in-progress marker's lifetime (ms), how many to
# claim, the marker's key prefix, where to start listing and how many to list at most, the
# export hash key prefix, the most one owner may run (0: no cap). Returns the claimed ids and
# their scores.
#
# Fair: of the due jobs nobody runs, a claim takes a prioritized export's first, then the job of
# the owner who runs the fewest jobs (running jobs stay at the head of the queue until they end,
# so they are listed) and, among those, who was served longest ago; the oldest job first among
# equals. One owner's six queued exports thus take turns with another's one instead of going
# before it. Jobs that are not exports (publishing, cron) are one owner of their own. The claim
# weighs every due job up to the read limit (arq's queue_read_limit), listed a few at a time.
CLAIM = """
local wanted, first, limit, cap = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[8])
local running, candidates = {}, {}
local listed, step = 0, 8
while listed < limit do
  local n = math.min(step, limit - listed)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', first + listed, n)
  for i = 1, #due, 2 do
    local id = due[i]
    local export = string.match(id, '^export:(.+):%d+$')
    local owner, priority = 'jobs', 0
    if export then
      local got = redis.call('HMGET', ARGV[7] .. export, 'owner', 'priority')
      owner, priority = 'u:' .. (got[1] or ''), tonumber(got[2] or '0') or 0
    end
    if redis.call('EXISTS', ARGV[4] .. id) == 1 then
      running[owner] = (running[owner] or 0) + 1
    else
      table.insert(candidates, {id, due[i + 1], owner, priority})
    end
  end
  if #due < 2 * n then break end
  listed, step = listed + n, step * 2
end
local served = {}
for _, c in ipairs(candidates) do
  if served[c[3]] == nil then served[c[3]] = tonumber(redis.call('ZSCORE', KEYS[2], c[3]) or '0') end
end
local claimed = {}
for _ = 1, wanted do
  local best, key = nil, nil
  for i, c in ipairs(candidates) do
    local load = running[c[3]] or 0
    if not c.taken and (cap == 0 or c[3] == 'jobs' or load < cap) then
      local better = not best or c[4] > key[1]
        or (c[4] == key[1] and (load < key[2] or (load == key[2] and served[c[3]] < key[3])))
      if better then best, key = i, {c[4], load, served[c[3]]} end
    end
  end
  if not best then break end
  local c = candidates[best]
  c.taken = true
  running[c[3]] = (running[c[3]] or 0) + 1
  served[c[3]] = tonumber(ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[1], c[3])
  redis.call('PSETEX', ARGV[4] .. c[1], ARGV[2], '1')
  table.insert(claimed, c[1])
  table.insert(claimed, c[2])
end
if #claimed > 0 then  -- owners not served for a day are as good as never served
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[1]) - 86400000)
end
return claimed
"""


class PromptWorker(Worker):
    def __init__(self, *args: Any, poll_delay: float = 0.5, alone_for: float = 0.0, owner_running: int = 0, **kwargs: Any):
        super().__init__(*args, poll_delay=0, **kwargs)  # arq's loop then never sleeps on its own
        self.look_every = poll_delay
        self.alone_for = alone_for
        self.owner_running = owner_running  # the most jobs one owner runs at once, as this worker sees; 0: any
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
        claimed = await self._claim(keys=[self.queue_name, keys.SERVED], args=[
            timestamp_ms(), int(self.in_progress_timeout_s * 1000), free, in_progress_key_prefix,
            self._queue_read_offset, listed, keys.export(""), self.owner_running])
        for job_id, score in zip(claimed[::2], claimed[1::2]):
            await self.sem.acquire()  # a free slot: no wait
            self.job_counter += 1
            job_id = job_id.decode()
            self._started[job_id] = time.monotonic()
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _, job_id=job_id: self._ended(job_id))
            self.tasks[job_id] = task
