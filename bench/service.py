"""`python -m bench.service` (part of `make bench`): the running service, measured through HTTP
with real processes (redis-server, `python -m api`, `python -m worker`):

- POST→ready latency of a 10,000-row CSV export with one idle worker (p50, p95 over --exports;
  each export asks for a different query, so none shares another's file), and of an export
  that shares a ready one's file;
- exports per second for small exports with 1 and with 2 workers (the median of 3 rounds,
  each a 1-worker drain then a 2-worker one), the workers as configured by default (a short
  export runs alone), then running 2 exports at once (EXPORTD_WORKER_ALONE_MS=0): --drained
  exports (400; 60 for make bench QUICK=1) queued while the workers are stopped (SIGSTOP),
  then drained. The drain ends when the last of them entered Redis' index of ready exports
  (its score), which is looked at every 0.1 s so that looking costs the machine nothing
  (through the API, the web process would take CPU from the workers). Printed beside it: the
  CPU each process spent an export and the cores they kept busy. Posting the exports while
  the workers run would measure the web process's POSTs (their CPU is shown apart) competing
  with the workers for the cores;
- GET /api/v1/exports/{id} requests per second (20 × --exports requests);
- peak RSS of a worker exporting --big-rows records (10,000,000) in each of --big-formats
  (every format of the issue by default, each export deleted once measured), a fresh worker
  process for each.

It prints a table and writes it to BENCHMARKS.md. Nothing asserts a time.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq
from redis.asyncio import Redis

from bench.faults import Client, Service, Tally
from bench.report import write_section
from domain import demo, keys
from domain.exports import READY




def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def create(client: Client, export_type: str, dataset: str, where: str | None = None) -> str:
    """POST an export; its URL."""
    body = {"export_type": export_type, "_links": {"osdi:resource": {"href": f"{client.base}/api/v2/catalog/datasets/{dataset}"}}}
    if where:
        body["query"] = {"where": where}
    async with client.session.post(f"{client.base}/api/v1/exports", json=body, headers=client.headers) as response:
        return (await response.json())["_links"]["self"]["href"]


async def ready_after(client: Client, export_type: str, dataset: str, where: str | None = None,
                      delete: bool = False) -> float:
    """Seconds from POST to ready, waiting with ?wait= as a client should; the export deleted
    once ready if asked (a large file the run need not keep)."""
    started = time.monotonic()
    export = await create(client, export_type, dataset, where)
    status = ""
    while status not in ("ready", "failed"):
        async with client.session.get(f"{export}?wait=10", headers=client.headers) as response:
            status = (await response.json())["status"]
    if status != "ready":
        raise RuntimeError(f"export {export} failed")
    seconds = time.monotonic() - started
    if delete:
        async with client.session.delete(export, headers=client.headers) as response:
            response.raise_for_status()
    return seconds


async def workers_up(client: Client, processes: list) -> None:
    """Wait until each of the worker `processes` beats in /health (names end with their pid)."""
    wanted = {str(p.pid) for p in processes}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with client.session.get(f"{client.base}/health") as response:
            seen = {w["name"].rsplit(":", 1)[-1] for w in (await response.json()).get("workers", [])}
        if wanted <= seen:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the workers did not start")


async def count_of(client: Client, status: str) -> int:
    async with client.session.get(f"{client.base}/api/v1/exports?status={status}&per_page=1", headers=client.headers) as response:
        return (await response.json())["total_records"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drain_rate(service: Service, client: Client, workers: list, count: int, first: int) -> tuple[str, float]:
    """Exports per second of the running `workers` draining `count` small exports queued at
    once, and what it cost: CPU an export by process, cores they kept busy. The workers
    are stopped (SIGSTOP) while the exports are posted and continued together, so that the
    rate is the workers' own, not theirs shared with the web process taking the POSTs (its
    CPU a POST is shown apart)."""
    pids = {"workers": [w.pid for w in workers], "redis": [service.redis.process.pid], "web": [service.web.pid],
            "bench client": [os.getpid()]}

    def used() -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in ids) for name, ids in pids.items()}

    # the ready exports counted in Redis' status index: watching through the API would have
    # the web process take CPU from the workers; a ZCARD costs Redis microseconds
    async with Redis.from_url(service.redis.url) as state:
        before_ready = await state.zcard(keys.exports_in(READY))
        before_failed = await count_of(client, "failed")
        for worker in workers:
            os.kill(worker.pid, signal.SIGSTOP)
        try:
            web_before = cpu_seconds(service.web.pid)
            # each a different query (where event_id > -N holds every record), so none shares a file
            await asyncio.gather(*(create(client, "csv", "small", f"event_id > -{first + i}") for i in range(count)))
            post_cost = (cpu_seconds(service.web.pid) - web_before) / count
            before, started = used(), time.time()
        finally:
            for worker in workers:
                os.kill(worker.pid, signal.SIGCONT)
        # looked at seldom, so that the looking costs the machine nothing: the drain ended when
        # the last export entered the index, whose score is that moment
        while await state.zcard(keys.exports_in(READY)) - before_ready < count:
            if time.time() - started > 120:
                raise RuntimeError("small exports did not end")
            await asyncio.sleep(0.1)
        after = used()
        [(_, ended)] = await state.zrange(keys.exports_in(READY), -1, -1, withscores=True)
        elapsed = ended - started
    if await count_of(client, "failed") > before_failed:
        raise RuntimeError("small exports failed")
    rate = count / elapsed
    costs = ", ".join(f"{name} {(after[name] - before[name]) / count * 1000:.1f} ms" for name in pids)
    busy = sum(after.values()) - sum(before.values())  # idle workers after the drain add little
    return (f"{rate:.1f} exports/s (CPU an export: {costs}; these processes kept {busy / elapsed:.1f} "
            f"of {os.cpu_count()} cores busy; web CPU a POST {post_cost * 1000:.0f} ms)"), rate


# How workers run their exports in the scaling rows: the default, then both slots at once
WORKER_CONFIGS = (("default: a short export runs alone, a second starts beside one running 1 s", {}),
                  ("2 exports at once (EXPORTD_WORKER_ALONE_MS=0)", {"EXPORTD_WORKER_ALONE_MS": "0"}))


async def scaling(service: Service, client: Client, config: str, env: dict[str, str], first: int,
                  drained: int, rounds: int = 3) -> list[tuple[str, str]]:
    """Rows of the table: small exports drained by 1 and by 2 workers configured by `env`
    (described by `config`), in `rounds` that each drain with one worker (the other stopped),
    then with both; the rates shown are the medians, the ratio theirs.

    Alternating: this machine's speed drifts by 10% over a minute (the same drain by the same
    worker ran 84 to 93 exports a second), so three 1-worker drains followed by three 2-worker
    drains measured the drift as much as the scaling; a round's two drains run on the machine as
    it then was."""
    workers = [service.worker(**env), service.worker(**env)]
    await workers_up(client, workers)
    # both warm: a process's first exports import and cache what later ones use
    await drain_rate(service, client, workers, 20, first + 9_000)
    ones, twos = [], []
    for k in range(rounds):
        os.kill(workers[1].pid, signal.SIGSTOP)
        try:
            ones.append(await drain_rate(service, client, workers[:1], drained, first + 1_000 * k))
        finally:
            os.kill(workers[1].pid, signal.SIGCONT)
        twos.append(await drain_rate(service, client, workers, drained, first + 5_000 + 1_000 * k))
    for process in workers:
        process.kill()
        process.wait(10)
    (one_text, one_rate), (two_text, two_rate) = (sorted(runs, key=lambda r: r[1])[len(runs) // 2] for runs in (ones, twos))
    each = ", ".join(f"{two[1] / one[1]:.2f}" for one, two in zip(ones, twos))
    return [(f"{drained} small exports (200 rows) queued, drained by 1 worker, {config} (median of {rounds})", one_text),
            (f"{drained} small exports (200 rows) queued, drained by 2 workers, {config} (median of {rounds}, "
             f"each round after a 1-worker drain)", f"{two_rate / one_rate:.2f}x (rounds: {each}): {two_text}")]


async def get_rate(client: Client, export_url: str, requests: int, concurrency: int) -> float:
    async def one_lane(n: int) -> None:
        for _ in range(n):
            async with client.session.get(export_url, headers=client.headers) as response:
                await response.read()
    started = time.monotonic()
    await asyncio.gather(*(one_lane(requests // concurrency) for _ in range(concurrency)))
    return requests / (time.monotonic() - started)


def peak_rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(exports: int, big_rows: int, big_formats: list[str], drained: int) -> None:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="exportd-bench-") as tmp:
        files = {"events": Path(tmp) / "events.parquet", "small": Path(tmp) / "small.parquet"}
        pq.write_table(demo.table(rows=10_000), files["events"])
        pq.write_table(demo.table(rows=200), files["small"])
        if big_rows:
            from bench.dataset import load
            files["big"] = load("points", big_rows).path
        service = Service(Path(tmp) / "service", EXPORTD_RATE_LIMIT="0")
        try:
            await service.start(files)
            async with aiohttp.ClientSession() as session:
                client = Client(session, service.base, Tally())
                worker = service.worker()
                await workers_up(client, [worker])
                await ready_after(client, "csv", "events", "event_id > -1")  # warm up
                latencies = [await ready_after(client, "csv", "events", f"event_id > -{i + 2}") for i in range(exports)]
                rows.append(("POST→ready, 10,000-row csv, 1 idle worker",
                             f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f} ms "
                             f"({exports} exports)"))
                shared = [await ready_after(client, "csv", "events", "event_id > -2") for _ in range(20)]
                rows.append(("POST→ready, an export sharing a ready file", f"p50 {statistics.median(shared) * 1000:.0f} ms (20 exports)"))
                async with session.get(f"{service.base}/api/v1/exports?per_page=1", headers=client.headers) as response:
                    one = (await response.json())["_embedded"]["osdi:exports"][0]["_links"]["self"]["href"]
                rows.append(("GET /api/v1/exports/{id}",
                             f"{await get_rate(client, one, 20 * exports, 20):,.0f} requests/s (20 at a time)"))
                worker.kill()
                worker.wait(10)
                first = 10_000
                for config, env in WORKER_CONFIGS:
                    rows += await scaling(service, client, config, env, first, drained)
                    first += 10_000
                for fmt in big_formats if big_rows else ():
                    big_worker = service.worker()
                    await workers_up(client, [big_worker])
                    seconds = await ready_after(client, fmt, "big", delete=True)
                    rows.append((f"worker exporting {big_rows:,} rows as {fmt}",
                                 f"peak RSS {peak_rss_mib(big_worker.pid):.0f} MiB, {big_rows / seconds:,.0f} rows/s"))
                    big_worker.kill()
                    big_worker.wait(10)
        finally:
            service.stop()
    table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)
    print(table)
    write_section("service", "The running service", table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exports", type=int, default=100)
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="0 to skip the large exports")
    parser.add_argument("--drained", type=int, default=400, choices=range(1, 1001), metavar="1..1000",
                        help="small exports a drain (more: its first and last moments, workers waking and the last few "
                             "alone, weigh less)")
    parser.add_argument("--big-formats", default="csv,json,jsonl,geojson,parquet,fgb,shp,kml,gpx,xlsx,ical,ov2", help="comma-separated formats of the large exports")
    args = parser.parse_args()
    asyncio.run(main(args.exports, args.big_rows, args.big_formats.split(","), args.drained))
