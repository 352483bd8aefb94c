"""`python -m bench.service` (part of `make bench`): the running service, measured through HTTP
with real processes (redis-server, `python -m api`, `python -m worker`):

- POST→ready latency of a 10,000-row CSV export with one idle worker (p50, p95 over --exports;
  each export asks for a different query, so none shares another's file), and of an export
  that shares a ready one's file;
- exports per second for small exports with 1 and with 2 workers;
- GET /api/v1/exports/{id} requests per second;
- peak RSS of a worker exporting --big-rows records (10,000,000) as CSV.

It prints a table and writes it to BENCHMARKS.md. Nothing asserts a time.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq

from bench.faults import Client, Service, Tally
from bench.report import write_section
from domain import demo


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def ready_after(client: Client, export_type: str, dataset: str, where: str | None = None) -> float:
    """Seconds from POST to ready, waiting with ?wait= as a client should."""
    started = time.monotonic()
    body = {"export_type": export_type, "_links": {"osdi:resource": {"href": f"{client.base}/api/v2/catalog/datasets/{dataset}"}}}
    if where:
        body["query"] = {"where": where}
    async with client.session.post(f"{client.base}/api/v1/exports", json=body, headers=client.headers) as response:
        export = (await response.json())["_links"]["self"]["href"]
    status = ""
    while status not in ("ready", "failed"):
        async with client.session.get(f"{export}?wait=10", headers=client.headers) as response:
            status = (await response.json())["status"]
    if status != "ready":
        raise RuntimeError(f"export {export} failed")
    return time.monotonic() - started


async def throughput(service: Service, client: Client, workers: int, count: int, first: int) -> float:
    for _ in range(workers):
        service.worker()
    await asyncio.sleep(2)  # let the workers start
    started = time.monotonic()
    # each a different query (where event_id > -N holds every record), so none shares a file
    await asyncio.gather(*(ready_after(client, "csv", "small", f"event_id > -{first + i}") for i in range(count)))
    elapsed = time.monotonic() - started
    for process in service.workers[-workers:]:
        process.kill()
        process.wait(10)
    return count / elapsed


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


async def main(exports: int, big_rows: int) -> None:
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
                await asyncio.sleep(2)
                await ready_after(client, "csv", "events", "event_id > -1")  # warm up
                latencies = [await ready_after(client, "csv", "events", f"event_id > -{i + 2}") for i in range(exports)]
                rows.append(("POST→ready, 10,000-row csv, 1 idle worker",
                             f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f} ms "
                             f"({exports} exports)"))
                shared = [await ready_after(client, "csv", "events", "event_id > -2") for _ in range(20)]
                rows.append(("POST→ready, an export sharing a ready file", f"p50 {statistics.median(shared) * 1000:.0f} ms (20 exports)"))
                async with session.get(f"{service.base}/api/v1/exports?per_page=1", headers=client.headers) as response:
                    one = (await response.json())["_embedded"]["osdi:exports"][0]["_links"]["self"]["href"]
                rows.append(("GET /api/v1/exports/{id}", f"{await get_rate(client, one, 2000, 20):,.0f} requests/s (20 at a time)"))
                worker.kill()
                worker.wait(10)
                one_worker = await throughput(service, client, 1, 60, 10_000)
                two_workers = await throughput(service, client, 2, 60, 20_000)
                rows.append(("small exports (200 rows), 1 worker", f"{one_worker:.1f} exports/s"))
                rows.append(("small exports (200 rows), 2 workers", f"{two_workers:.1f} exports/s ({two_workers / one_worker:.2f}x)"))
                if big_rows:
                    big_worker = service.worker()
                    seconds = await ready_after(client, "csv", "big")
                    rows.append((f"worker exporting {big_rows:,} rows as csv",
                                 f"peak RSS {peak_rss_mib(big_worker.pid):.0f} MiB, {big_rows / seconds:,.0f} rows/s"))
        finally:
            service.stop()
    table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)
    print(table)
    write_section("service", "The running service", table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exports", type=int, default=100)
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="0 to skip the large export")
    args = parser.parse_args()
    asyncio.run(main(args.exports, args.big_rows))
