"""Knowing before and while waiting: what an export will cost (POST /api/v1/exports/estimate),
and where a queued export stands (`queue_position`, `estimated_ready_date`).

An export's size and duration are its record count (counted on the dataset's version with its
query, as a new export is) times the format's measured cost per record: the bytes and seconds
of every export of that format written so far (the metrics the READY transition counts, so
every worker's exports inform every web process). A format never written yet borrows the
figures of all formats together; with nothing written at all there is no estimate (null).

A queued export's position is its rank among the queued exports, in the order they were
queued (1: next). Its ready date comes from laying the exports ahead of it, and those being
written, on the worker slots there are now (live workers × EXPORTD_WORKER_JOBS), each slot
taking the next export as it frees: asked again, it follows the queue as it moves.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable

from redis.asyncio import Redis

from domain import keys
from domain.exports import PROCESSING, QUEUED, Export
from domain.timeutil import iso, now

LOOK_AHEAD = 1000  # queued exports laid on the slots one by one; further ones by the average
WORKER_SILENCE = 20  # seconds after its last heartbeat a worker no longer counts (as /health)


@dataclass(frozen=True)
class Cost:
    seconds_per_record: float
    bytes_per_record: float
    exports: int  # how many written exports the figures come from

    def of(self, records: int) -> tuple[int, float]:
        return round(records * self.bytes_per_record), round(records * self.seconds_per_record, 3)


class Costs:
    """Every format's measured cost per record, read once."""

    def __init__(self, raw: dict[str, str]):
        self._raw = raw
        formats = {key.split("|")[1] for key in raw if key.startswith("observed|")}
        self.by_format = {f: c for f in formats if (c := self._cost((f,))) is not None}
        self.overall = self._cost(formats)

    def _cost(self, formats: Iterable[str]) -> Cost | None:
        records = seconds = size = exports = 0.0
        for f in formats:
            records += float(self._raw.get(f"records|{f}", 0))
            seconds += float(self._raw.get(f"duration_sum|{f}", 0))
            size += float(self._raw.get(f"size_sum|{f}", 0))
            exports += float(self._raw.get(f"observed|{f}", 0))
        if records <= 0:
            return None
        return Cost(seconds / records, size / records, int(exports))

    def of(self, export_type: str) -> Cost | None:
        return self.by_format.get(export_type) or self.overall

    def seconds(self, export_type: str, records: int | None) -> float | None:
        cost = self.of(export_type)
        return None if cost is None or records is None else records * cost.seconds_per_record


async def costs(redis: Redis) -> Costs:
    return Costs(await redis.hgetall(keys.METRICS))


def estimate(all_costs: Costs, export_type: str, records: int) -> dict[str, Any]:
    """The answer of POST /api/v1/exports/estimate for `records` records of `export_type`."""
    cost = all_costs.of(export_type)
    size, seconds = cost.of(records) if cost is not None else (None, None)
    return {"records_total": records, "estimated_bytes": size, "estimated_seconds": seconds,
            "measured_exports": cost.exports if cost is not None else 0,
            "measured_format": export_type in all_costs.by_format}


async def slots(redis: Redis, worker_jobs: int) -> int:
    alive = await redis.zcount(keys.WORKERS, time.time() - WORKER_SILENCE, "+inf")
    return alive * worker_jobs


async def queue_view(redis: Redis, exports: Iterable[Export], worker_jobs: int) -> dict[str, dict[str, Any]]:
    """queue_position and estimated_ready_date of each queued export among `exports` (the
    date null when it cannot be told: no live worker, or no cost measured yet)."""
    queued = [e for e in exports if e.status == QUEUED]
    if not queued:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for e in queued:
            pipe.zrank(keys.exports_in(QUEUED), e.id)
        pipe.zrange(keys.exports_in(QUEUED), 0, LOOK_AHEAD - 1)
        pipe.zrange(keys.exports_in(PROCESSING), 0, -1)
        *ranks, ahead, running = await pipe.execute()
    all_costs, capacity = await costs(redis), await slots(redis, worker_jobs)
    finish = await _finish_times(redis, all_costs, capacity, ahead, running) if capacity else {}
    moment = now()
    view: dict[str, dict[str, Any]] = {}
    for e, rank in zip(queued, ranks):
        if rank is None:  # it left the queue between the two reads
            continue
        seconds = finish.get(e.id)
        if seconds is None and finish and rank >= LOOK_AHEAD and (own := all_costs.seconds(e.export_type, e.records_total)) is not None:
            # past the look-ahead: the last laid export's end, then an average share of the slots
            seconds = max(finish.values()) + (rank - LOOK_AHEAD + 1) * own / capacity
        view[e.id] = {"queue_position": rank + 1,
                      "estimated_ready_date": iso(moment + timedelta(seconds=seconds)) if seconds is not None else None}
    return view


async def _finish_times(redis: Redis, all_costs: Costs, capacity: int, ahead: list[str],
                        running: list[str]) -> dict[str, float]:
    """Seconds from now until each of `ahead` (queued, in order) is ready, laid on `capacity`
    slots that first finish what `running` is writing; {} when a cost is unknown."""
    async with redis.pipeline(transaction=False) as pipe:
        for export_id in [*running, *ahead]:
            pipe.hmget(keys.export(export_id), "export_type", "records_total", "records_done")
        fields = await pipe.execute()
    busy = []
    for export_type, total, done in fields[:len(running)]:
        left = all_costs.seconds(export_type or "", max(0, int(total or 0) - int(done or 0)))
        if left is None:
            return {}
        busy.append(left)
    free = busy + [0.0] * max(0, capacity - len(busy))  # every running export holds a slot till it ends
    heapq.heapify(free)
    finish: dict[str, float] = {}
    for export_id, (export_type, total, _) in zip(ahead, fields[len(running):]):
        seconds = all_costs.seconds(export_type or "", int(total or 0))
        if seconds is None:
            return {}
        start = heapq.heappop(free)
        finish[export_id] = start + seconds
        heapq.heappush(free, start + seconds)
    return finish
