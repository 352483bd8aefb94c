"""`python -m bench.web` (part of `make bench`): the web tier's cost, with 1 and with 2 web
processes sharing the port (EXPORTD_WEB_PROCESSES), each a real `python -m api` beside a real
redis-server, no worker (the exports stay queued):

- POST /api/v1/exports per second, --posts of them from --clients concurrent clients, each a
  different query of the demo dataset (so none shares a file), and the CPU the web processes
  (with their query processes) and Redis spent a POST;
- GET /api/v1/exports/{id} per second, --gets of them, and the CPU a GET.

The load comes from this process, on the same cores: the rates are what one host of this kind
serves with its client beside it, the CPU per request is the service's own. It prints a table
and writes it to BENCHMARKS.md. Nothing asserts a time.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq

from bench.report import write_section
from bench.wait import answering
from domain import demo, manage
from domain.redis_server import RedisServer, free_port
from domain.settings import Settings
from tests.processes import descendants

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"


def cpu_seconds(*pids: int) -> float:
    """User + system CPU seconds of `pids` and their descendants (a process gone counts nothing)."""
    total = 0.0
    for pid in {p for pid in pids for p in (pid, *descendants(pid))}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def load(count: int, clients: int, request) -> float:
    """Seconds `clients` concurrent loops take to make `count` requests with `request(i)`."""
    todo = iter(range(count))

    async def client() -> None:
        for i in todo:
            await request(i)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


async def measure(root: Path, processes: int, posts: int, gets: int, clients: int) -> list[str]:
    redis = RedisServer(root / f"redis-{processes}").start()
    port = free_port()
    env = {**os.environ, "EXPORTD_DATA_DIR": str(root / f"data-{processes}"), "EXPORTD_REDIS_URL": redis.url,
           "EXPORTD_PORT": str(port), "EXPORTD_SECRET_KEY": "bench", "EXPORTD_ADMIN_TOKEN": TOKEN,
           "EXPORTD_WEB_PROCESSES": str(processes), "EXPORTD_RATE_LIMIT": "0", "EXPORTD_EXPLORE_RATE_LIMIT": "0"}
    source = root / "demo.parquet"
    if not source.exists():
        pq.write_table(demo.table(), source)
    await manage.load(Settings.from_env(env), source, demo.DATASET_ID)
    webs = [subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(processes)]
    base = f"http://127.0.0.1:{port}"
    try:
        await answering(base)
        await asyncio.sleep(1)
        pids = [w.pid for w in webs]
        hrefs: list[str] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
            headers = {"OSDI-API-Token": TOKEN}

            async def post(i: int) -> None:
                body = {"export_type": "csv", "_links": {"osdi:resource": {
                    "href": f"{base}/api/v2/catalog/datasets/{demo.DATASET_ID}/records?where=event_id<={i + 1}"}}}
                async with session.post(f"{base}/api/v1/exports", json=body, headers=headers) as response:
                    assert response.status == 201, await response.text()
                    hrefs.append((await response.json())["_links"]["self"]["href"])

            async def get(i: int) -> None:
                async with session.get(hrefs[i % len(hrefs)], headers=headers) as response:
                    assert response.status == 200
                    await response.read()

            await load(clients * 4, clients, post)  # warm: query processes started, connections made
            web0, redis0 = cpu_seconds(*pids), cpu_seconds(redis.process.pid)
            seconds = await load(posts, clients, post)
            web_post, redis_post = (cpu_seconds(*pids) - web0) / posts, (cpu_seconds(redis.process.pid) - redis0) / posts
            web0, redis0 = cpu_seconds(*pids), cpu_seconds(redis.process.pid)
            get_seconds = await load(gets, clients, get)
            web_get, redis_get = (cpu_seconds(*pids) - web0) / gets, (cpu_seconds(redis.process.pid) - redis0) / gets
    finally:
        for web in webs:
            web.terminate()
        for web in webs:
            web.wait(30)
        redis.stop()
    label = f"{processes} web process{'es' if processes > 1 else ''}"
    return [f"| {label} | POST | {posts / seconds:,.0f}/s | {web_post * 1000:.2f} ms | {redis_post * 1000:.2f} ms |",
            f"| {label} | GET of an export | {gets / get_seconds:,.0f}/s | {web_get * 1000:.2f} ms | {redis_get * 1000:.2f} ms |"]


async def main_async(args: argparse.Namespace) -> str:
    rows = ["| web tier | request | rate | CPU a request, web (with query processes) | CPU a request, Redis |",
            "| --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, 2):
            rows += await measure(Path(tmp), processes, args.posts, args.gets, args.clients)
    note = (f"\n\n{args.posts} POSTs and {args.gets} GETs from {args.clients} concurrent clients in the bench process, "
            f"on the same {os.cpu_count()} cores.")
    return "\n".join(rows) + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--gets", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=32)
    body = asyncio.run(main_async(parser.parse_args(argv)))
    print(body)
    write_section("web", "The web tier: requests per second and CPU per request", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
