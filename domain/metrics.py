"""Counters and histograms for GET /metrics (Prometheus text format), kept in Redis so every web
process answers for every worker: exports created, ready, failed, expired and rejected by format,
records written, export duration and size.

Each count is made in the same Redis transaction as what it counts (the export's creation, or
the compare-and-set of its change of state: ExportRepo counts every change into an outcome), so
a duplicated job, a late attempt or a crash between two round trips never counts an export
twice or not at all."""
from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from domain import keys, queue
from domain.users import ADMIN

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)  # seconds
SIZE_BUCKETS = (1e4, 1e5, 1e6, 1e7, 1e8, 1e9)  # bytes
OUTCOMES = ("created", "ready", "failed", "expired", "rejected")
OWNER_CLASSES = ("administrator", "user")
QUEUED_LOOKS = 10_000  # queued exports /metrics classifies by owner; past them it counts the first ones


def counted(outcome: str, export_type: str) -> list[Any]:
    """The Redis command counting one export of `export_type` into `outcome`."""
    return ["HINCRBY", keys.METRICS, f"{outcome}|{export_type}", 1]


def ready_counts(export_type: str, seconds: float, size: int, records: int) -> list[list[Any]]:
    """The Redis commands that count an export's file written (the READY transition counts the
    export ready itself), its records, and its duration and size in the one bucket each falls
    in (`render` adds them up), run with its READY transition (ExportRepo.transition's `also`):
    no round trip of their own."""
    counts = [["HINCRBY", keys.METRICS, f"{outcome}|{export_type}", amount]
              for outcome, amount in (("records", records), ("observed", 1))]  # observed: written here
    for name, value, buckets in (("duration", seconds, DURATION_BUCKETS), ("size", size, SIZE_BUCKETS)):
        counts.append(["HINCRBY", keys.METRICS, f"{name}_in|{export_type}|{bucket_of(value, buckets)}", 1])
        counts.append(["HINCRBYFLOAT", keys.METRICS, f"{name}_sum|{export_type}", value])
    return counts


def bucket_of(value: float, buckets: tuple[float, ...]) -> str:
    """The smallest bound `value` is within, as text ('+Inf' past the last)."""
    return next((f"{bound:g}" for bound in buckets if value <= bound), "+Inf")


def _line(name: str, labels: dict[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {value:g}" if inner else f"{name} {value:g}"


async def queued_by_owner(redis: Redis) -> tuple[dict[str, int], int]:
    """Queued exports by the class of their owner, and how many owners they belong to: what
    the fair claim (worker/prompt_worker.py) shares the workers between."""
    ids = await redis.zrange(keys.exports_in("queued"), 0, QUEUED_LOOKS - 1)
    async with redis.pipeline(transaction=False) as pipe:
        for export_id in ids:
            pipe.hget(keys.export(export_id), "owner")
        pipe.hgetall(keys.USERS)
        *owners, users = await pipe.execute()
    admins = {name for name, record in users.items() if orjson.loads(record).get("admin")}
    counts = dict.fromkeys(OWNER_CLASSES, 0)
    for owner in owners:
        if owner is not None:
            counts["administrator" if owner in admins or owner == ADMIN else "user"] += 1
    return counts, len({o for o in owners if o is not None})


async def render(redis: Redis, queue_name: str) -> str:
    raw = await redis.hgetall(keys.METRICS)
    queued, _ = await queue.waiting(redis, queue_name)
    by_class, owners = await queued_by_owner(redis)
    formats = sorted({key.split("|")[1] for key in raw})
    out = ["# HELP exportd_queue_depth Jobs due now and waiting for a worker (not running, not stale).",
           "# TYPE exportd_queue_depth gauge", _line("exportd_queue_depth", {}, queued),
           "# HELP exportd_exports_queued Exports queued, by the class of their owner.",
           "# TYPE exportd_exports_queued gauge"]
    out += [_line("exportd_exports_queued", {"owner_class": c}, n) for c, n in by_class.items()]
    out += ["# HELP exportd_queued_owners Owners with an export queued: who the workers take turns between.",
            "# TYPE exportd_queued_owners gauge", _line("exportd_queued_owners", {}, owners)]
    for outcome in OUTCOMES:
        out += [f"# HELP exportd_exports_{outcome}_total Exports {outcome}, by format.",
                f"# TYPE exportd_exports_{outcome}_total counter"]
        out += [_line(f"exportd_exports_{outcome}_total", {"format": f}, float(raw.get(f"{outcome}|{f}", 0))) for f in formats]
    out += ["# HELP exportd_records_written_total Records written into ready exports, by format.",
            "# TYPE exportd_records_written_total counter"]
    out += [_line("exportd_records_written_total", {"format": f}, float(raw.get(f"records|{f}", 0))) for f in formats]
    for name, unit, buckets in (("duration", "seconds", DURATION_BUCKETS), ("size", "bytes", SIZE_BUCKETS)):
        metric = f"exportd_export_{name}_{unit}"
        out += [f"# HELP {metric} Written exports' {name}, by format.", f"# TYPE {metric} histogram"]
        for f in formats:
            total = float(raw.get(f"observed|{f}", 0))
            below = 0.0
            for bound in buckets:
                below += float(raw.get(f"{name}_in|{f}|{bound:g}", 0))
                out.append(_line(f"{metric}_bucket", {"format": f, "le": f"{bound:g}"}, below))
            out.append(_line(f"{metric}_bucket", {"format": f, "le": "+Inf"}, total))
            out.append(_line(f"{metric}_sum", {"format": f}, float(raw.get(f"{name}_sum|{f}", 0))))
            out.append(_line(f"{metric}_count", {"format": f}, total))
    return "\n".join(out) + "\n"
