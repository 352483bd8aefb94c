"""`python -m bench.attacks` (part of `make faults`): the attacker's worst requests against a
real web process (`python -m api`, with Redis and no worker), with what each cost:

- a POST whose where chains 10,000 OR-ed terms, and the same inside a records href;
- three worst-case aggregates at once (a group a record, in key order and ordered by an
  aggregate) on --rows records, with light requests meanwhile: the web process's RSS with its query processes (its whole process
  tree), the worst light-request latency;
- a query process killed with SIGSEGV mid-query: what its request answered, whether the web
  process is still the same one, and how long until a request is served again;
- under `make run` (`python -m domain.manage run`, supervisord), the web process killed with
  SIGSEGV and the worker with SIGKILL: how long until each is back (a new pid, serving).

It prints a table and writes it to BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq

from bench.faults import TOKEN, Service
from bench.report import write_section
from domain import demo
from tests.processes import descendants, rss
from tests.test_isolation import SLOW, WORST, WORST_ORDERED, unique_table

MIB = 2**20
V2 = "/api/v2/catalog/datasets"


async def long_chains(session: aiohttp.ClientSession, base: str) -> str:
    where = " OR ".join(f"event_id = {i}" for i in range(10_000))
    href = f"{base}{V2}/demo/records?where=" + " OR ".join(f"attendance > {i}" for i in range(5_000))
    statuses = []
    for link, query in ((f"{base}{V2}/demo", {"where": where}), (href, {})):
        body = {"export_type": "csv", "query": query, "_links": {"osdi:resource": {"href": link}}}
        async with session.post(f"{base}/api/v1/exports", json=body, headers={"OSDI-API-Token": TOKEN}) as response:
            statuses.append(f"{response.status} {(await response.json())['error_code']}")
    return ", ".join(statuses)


async def heavy_aggregates(session: aiohttp.ClientSession, base: str, web_pid: int,
                           worst: dict) -> tuple[float, float, list[int]]:
    async with session.get(f"{base}{V2}/demo/records?limit=1") as response:  # a query process up
        await response.read()
    before = peak = rss(web_pid, *descendants(web_pid))
    heavy = [asyncio.ensure_future(session.get(f"{base}{V2}/big/aggregates", params=worst)) for _ in range(3)]
    worst = 0.0
    while not all(h.done() for h in heavy):
        started = time.monotonic()
        async with session.get(f"{base}{V2}/demo/records", params={"limit": "5", "where": "city = 'Lyon'"}) as response:
            await response.read()
        worst = max(worst, time.monotonic() - started)
        peak = max(peak, rss(web_pid, *descendants(web_pid)))
        await asyncio.sleep(0.05)
    statuses = []
    for h in heavy:
        response = await h
        statuses.append(response.status)
        response.release()
    return (peak - before) / MIB, worst, statuses


async def crash(session: aiohttp.ClientSession, base: str, web_pid: int) -> tuple[str, float]:
    """A slow query, and every query process (the fork server's children) killed meanwhile."""
    pending = asyncio.ensure_future(session.get(f"{base}{V2}/big/records", params=SLOW))
    await asyncio.sleep(0.3)
    for pid in descendants(web_pid, depth=2):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSEGV)
    response = await pending
    answer = f"{response.status} {(await response.json())['error_code']}"
    started = time.monotonic()
    async with session.get(f"{base}{V2}/demo/records?limit=1") as again:
        await again.read()
        assert again.status == 200
    return answer, time.monotonic() - started


def supervised(directory: Path) -> dict[str, float]:
    """Seconds until make run's web process, then its worker, is back after being killed."""
    from tests.test_supervision import Run

    directory.mkdir(parents=True, exist_ok=True)
    run = Run(directory)
    try:
        run.until(run.healthy)
        run.until(lambda: set(run.pids()) == {"web", "worker"})
        figures = {}
        for name, sig, back in (("web", signal.SIGSEGV, run.serves), ("worker", signal.SIGKILL, run.healthy)):
            before = run.pids()[name]
            killed = time.monotonic()
            os.kill(before, sig)
            run.until(lambda: run.pids().get(name, before) != before)
            run.until(back)
            figures[f"{name} ({sig.name})"] = time.monotonic() - killed
        return figures
    finally:
        run.process.send_signal(signal.SIGINT)
        run.process.wait(60)
        run.log.close()


async def main(rows: int) -> str:
    with tempfile.TemporaryDirectory(prefix="exportd-attacks-") as tmp:
        paths = {"demo": Path(tmp) / "demo.parquet", "big": Path(tmp) / "big.parquet"}
        pq.write_table(demo.table(rows=3000), paths["demo"])
        pq.write_table(unique_table(rows), paths["big"], row_group_size=256 * 1024)
        service = Service(Path(tmp))
        try:
            await service.start(paths)
            assert service.web is not None
            pid = service.web.pid
            async with aiohttp.ClientSession() as session:
                chains = await long_chains(session, service.base)
                aggregates = [(name, await heavy_aggregates(session, service.base, pid, params))
                              for name, params in (("in key order", WORST), ("ordered by an aggregate", WORST_ORDERED))]
                crashed, back = await crash(session, service.base, pid)
            alive = service.web.poll() is None
        finally:
            service.stop()
        restarts = supervised(Path(tmp) / "make-run")
    return "\n".join([
        "| attack | what the client saw | what it cost |", "| --- | --- | --- |",
        f"| POST, where of 10,000 OR-ed terms; records href of 5,000 | {chains} | web process up: {alive} |",
        *(f"| 3 aggregates at once, a group a record, {name}, {rows:,} rows | {statuses} | web RSS with its "
          f"query processes +{growth:.0f} MiB; light request at worst {worst * 1000:.0f} ms |"
          for name, (growth, worst, statuses) in aggregates),
        f"| query process killed (SIGSEGV) mid-query | {crashed} | next request served after {back * 1000:.0f} ms; "
        f"same web process: {alive} |",
        "| under make run, " + " then ".join(restarts) + " killed | each restarted by supervisord (test_supervision.py: Redis and the "
        "other keep their pids) | back (new pid, RUNNING, serving) after " + ", ".join(f"{s:.1f} s" for s in restarts.values()) + " |",
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    table = asyncio.run(main(parser.parse_args().rows))
    print(table)
    write_section("attacks", "Attacks on a real web process (make faults)", table)
