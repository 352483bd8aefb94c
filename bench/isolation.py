"""`python -m bench.isolation` (part of `make bench`): what running queries in query processes
(api/isolation) costs, measured in one run against the same queries run in a thread of the
web process, as they were before:

- the latency of a light records request (a page of the demo dataset with a filter), p50 and
  p95 over --requests, through HTTP on the real app, its queries in query processes or in a
  thread (the pool's call replaced by the same call run in a thread);
- a streamed CSV export of --rows records: seconds and MB/s through HTTP, query process or
  thread;
- the memory the pool keeps: the fork server's RSS and each idle query process's.

It prints a table and writes it to BENCHMARKS.md. Nothing asserts a time.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.isolation import pool as pool_module
from api.isolation.calls import CALLS, Env
from api.isolation.errors import Relayed
from api.errors import known_error
from api.keys import POOL
from bench.report import write_section
from domain import demo, queue
from domain.datasets import DatasetRepo, import_file
from domain.redis_server import RedisServer
from domain.settings import Settings
from domain.storage import open_storage
from tests.processes import rss
from tests.test_isolation import unique_table

MIB = 2**20


class Counted(io.RawIOBase):
    """A file that only counts what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.size += len(data)
        return len(data)


class InThread:
    """The pool's call run in a thread of this process: what the web process did before."""

    def __init__(self, settings: Settings) -> None:
        self.env = Env(settings)

    async def call(self, kind: str, name: str, args: dict) -> tuple[dict, bytes]:
        out = io.BytesIO()

        def run() -> dict:
            try:
                return CALLS[name](self.env, out, **args)
            except Exception as exc:
                fields = known_error(exc)
                if fields is None:
                    raise
                status, code, message, headers, extra = fields
                raise Relayed({"status": status, "error_code": code, "message": message, "headers": headers,
                               "extra": extra}) from None
        result = await asyncio.to_thread(run)
        return result, out.getvalue()


async def load(settings: Settings, path: Path, dataset_id: str) -> None:
    storage = open_storage(settings)
    try:
        dataset = await asyncio.to_thread(import_file, path, dataset_id, storage)
    finally:
        storage.close()
    state = queue.connect(settings)
    await DatasetRepo(state).save(dataset)
    await state.aclose()


async def light_latencies(client: TestClient, requests: int) -> list[float]:
    seconds = []
    for i in range(requests):
        started = time.perf_counter()
        async with client.get("/api/v2/catalog/datasets/demo-events/records",
                              params={"limit": "10", "offset": str(i % 50), "where": "city = 'Lyon'"}) as response:
            await response.read()
            assert response.status == 200
        seconds.append(time.perf_counter() - started)
    return seconds


async def streamed(client: TestClient) -> tuple[float, int]:
    started = time.perf_counter()
    size = 0
    async with client.get("/api/v2/catalog/datasets/big/exports/csv") as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(1 << 20):
            size += len(chunk)
    return time.perf_counter() - started, size


async def measure(args) -> str:
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as redis:
        settings = Settings(data_dir=Path(tmp) / "data", secret_key="bench", admin_token="bench", redis_url=redis.url)
        demo_path, big_path = Path(tmp) / "demo.parquet", Path(tmp) / "big.parquet"
        pq.write_table(demo.table(), demo_path)
        pq.write_table(unique_table(args.rows), big_path, row_group_size=256 * 1024)
        await load(settings, demo_path, "demo-events")
        await load(settings, big_path, "big")
        rows = []
        async with TestClient(TestServer(create_app(settings))) as client:
            app = client.server.app
            pool = app[POOL]
            await light_latencies(client, 20)  # warm: a process per kind, the version cache
            isolated = await light_latencies(client, args.requests)
            idle = [rss(c.pid) for c in pool._idle]
            server = pool_module.multiprocessing.forkserver._forkserver._forkserver_pid
            stream_isolated = await streamed(client)
            pool.call = InThread(settings).call  # type: ignore[method-assign]
            await light_latencies(client, 20)
            threaded = await light_latencies(client, args.requests)
            del pool.call
        def p(values: list[float], q: float) -> float:
            return statistics.quantiles(values, n=100)[q - 1] * 1000
        rows.append(f"| light records request, p50 | {p(isolated, 50):.2f} ms | {p(threaded, 50):.2f} ms |")
        rows.append(f"| light records request, p95 | {p(isolated, 95):.2f} ms | {p(threaded, 95):.2f} ms |")
        seconds, size = stream_isolated
        # the thread variant of the stream: the writer loop alone, as the web process ran it
        env, started = Env(settings), time.perf_counter()
        sink = Counted()
        dataset = (await DatasetRepo(queue.connect(settings)).get("big")).to_json().decode()
        await asyncio.to_thread(CALLS["stream_export"], env, sink, dataset, {}, "csv", {}, lambda head: None)
        alone = time.perf_counter() - started
        rows.append(f"| streamed csv, {args.rows:,} rows | {seconds:.2f} s ({size / MIB / seconds:.0f} MiB/s) | "
                    f"{alone:.2f} s writing alone ({sink.size / MIB / alone:.0f} MiB/s, no HTTP) |")
        rows.append(f"| memory kept | fork server {rss(server) / MIB:.0f} MiB, "
                    f"{len(idle)} idle query process(es) {', '.join(f'{r / MIB:.0f}' for r in idle)} MiB RSS "
                    "(shared pages counted in each) | — |")
    return "\n".join(["| what | in query processes | in a thread |", "| --- | --- | --- |", *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    table = asyncio.run(measure(args))
    print(table)
    write_section("isolation", "Query processes: what isolation costs", table)


if __name__ == "__main__":
    main()
