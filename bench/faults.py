"""`python -m bench.faults` (`make faults`): the fault scenarios, each run several times against
real processes — a redis-server, the web process (`python -m api`) and worker processes
(`python -m worker`) — and a table of what became of every export the API acknowledged.

    scenario | runs | acknowledged | ready | failed with reason | lost

`lost` counts exports acknowledged with 201 that ended neither ready nor failed with a detail
within the time allowed. tests/test_reliability.py runs each scenario once in CI (marker
`faults`); this script repeats them (`--runs N`, `--only NAME`).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pyarrow as pa
import pyarrow.parquet as pq

from bench.wait import answering
from domain import demo, manage
from domain.redis_server import RedisServer, free_port
from domain.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "faults-admin-token"
SETTLE_TIMEOUT = 120


@dataclass
class Tally:
    acknowledged: int = 0
    ready: int = 0
    failed: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)


class Service:
    """Redis, one web process and worker processes in a temporary directory."""

    def __init__(self, root: Path, **env: str):
        self.root = root
        self.redis = RedisServer(root / "redis")
        self.port = free_port()
        self.workers: list[subprocess.Popen] = []
        self.web: subprocess.Popen | None = None
        self.extra_env = env

    def env(self, **more: str) -> dict[str, str]:
        return {**os.environ, "EXPORTD_DATA_DIR": str(self.root / "data"), "EXPORTD_REDIS_URL": self.redis.url,
                "EXPORTD_SECRET_KEY": "faults-secret", "EXPORTD_ADMIN_TOKEN": TOKEN, "EXPORTD_PORT": str(self.port),
                "EXPORTD_LEASE_SECONDS": "3", **self.extra_env, **more}

    def spawn(self, module: str, **env: str) -> subprocess.Popen:
        log = open(self.root / f"{module}-{len(self.workers)}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return process

    def worker(self, module: str = "worker", **env: str) -> subprocess.Popen:
        process = self.spawn(module, **env)
        self.workers.append(process)
        return process

    async def start(self, datasets: dict[str, Path]) -> None:
        self.redis.start()
        for dataset_id, path in datasets.items():
            await manage.load(Settings.from_env(self.env()), path, dataset_id)
        self.web = self.spawn("api")
        await answering(self.base, 10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        for process in [*self.workers, self.web]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        self.redis.stop()


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, tally: Tally):
        self.session, self.base, self.tally = session, base, tally
        self.headers = {"OSDI-API-Token": TOKEN}

    async def create(self, export_type: str, dataset_id: str) -> str:
        body = {"export_type": export_type, "_links": {"osdi:resource": {"href": f"{self.base}/api/v2/catalog/datasets/{dataset_id}"}}}
        async with self.session.post(f"{self.base}/api/v1/exports", json=body, headers=self.headers) as response:
            resource = await response.json()
            if response.status != 201:
                raise RuntimeError(f"export not acknowledged: {response.status} {resource}")
        self.tally.acknowledged += 1
        return resource["_links"]["self"]["href"].rsplit("/", 1)[1]

    async def status(self, export: str) -> dict:
        try:
            async with self.session.get(f"{self.base}/api/v1/exports/{export}", headers=self.headers) as response:
                return await response.json() if response.status == 200 else {"status": f"http {response.status}"}
        except aiohttp.ClientError as exc:
            return {"status": f"unreachable: {exc}"}

    async def until(self, export: str, statuses: tuple[str, ...], timeout: float = 60, progress: bool = False) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = await self.status(export)
            if body.get("status") in statuses and (not progress or body.get("progress", {}).get("records_done", 0) > 0):
                return body
            await asyncio.sleep(0.1)
        return await self.status(export)

    async def settle(self, exports: list[str], on_wait=None) -> None:
        """Wait for every export to end; count ready, failed with a reason, and lost."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        pending = list(exports)
        while pending and time.monotonic() < deadline:
            if on_wait:
                on_wait()
            for export in list(pending):
                body = await self.status(export)
                if body.get("status") == "ready":
                    self.tally.ready += 1
                    pending.remove(export)
                elif body.get("status") == "failed" and body.get("detail"):
                    self.tally.failed += 1
                    pending.remove(export)
            await asyncio.sleep(0.2)
        self.tally.lost += len(pending)
        for export in pending:
            self.tally.notes.append(f"{export}: {(await self.status(export)).get('status')}")


@asynccontextmanager
async def running(tally: Tally, datasets: dict[str, Path], **env: str):
    with tempfile.TemporaryDirectory(prefix="exportd-faults-") as tmp:
        service = Service(Path(tmp), **env)
        try:
            await service.start(datasets)
            async with aiohttp.ClientSession() as session:
                yield service, Client(session, service.base, tally)
        finally:
            service.stop()


SLOW = "tests.slow_worker"  # the production worker taking 0.2 s a batch, so the fault lands mid-export


async def worker_sigkill(tally: Tally, data: dict[str, Path]) -> None:
    async with running(tally, data) as (service, client):
        first = service.worker(SLOW)
        export = await client.create("jsonl", "big")
        await client.until(export, ("processing",), progress=True)
        first.send_signal(signal.SIGKILL)
        service.worker()
        await client.settle([export])


async def worker_sigterm(tally: Tally, data: dict[str, Path]) -> None:
    async with running(tally, data) as (service, client):
        first = service.worker(SLOW, EXPORTD_SHUTDOWN_GRACE="1")
        exports = [await client.create("json", "big"), await client.create("csv", "demo")]
        await client.until(exports[0], ("processing",), progress=True)
        first.send_signal(signal.SIGTERM)
        first.wait(30)
        service.worker()
        await client.settle(exports)


async def redis_sigkill(tally: Tally, data: dict[str, Path]) -> None:
    async with running(tally, data) as (service, client):
        service.worker(SLOW)
        exports = [await client.create("json", "big"), await client.create("csv", "big")]
        await client.until(exports[0], ("processing",), progress=True)
        service.redis.process.kill()
        service.redis.process.wait(10)
        await asyncio.sleep(1)
        service.redis.start()
        await client.settle(exports)


async def duplicate_delivery(tally: Tally, data: dict[str, Path]) -> None:
    from domain.queue import RUN_EXPORT, arq_pool

    async with running(tally, data) as (service, client):
        service.worker(), service.worker()
        pool = await arq_pool(service.redis.url, "exportd:queue")
        try:
            exports = []
            for _ in range(3):
                export = await client.create("csv", "demo")
                for copy in ("a", "b"):
                    await pool.enqueue_job(RUN_EXPORT, export, 1, _job_id=f"dup-{copy}-{export}")
                exports.append(export)
            await client.settle(exports)
        finally:
            await pool.aclose()
        for export in exports:
            files = list((service.root / "data" / "exports" / export).rglob("*.csv"))
            if len(files) != 1:
                tally.notes.append(f"{export}: {len(files)} files")


async def poison_export(tally: Tally, data: dict[str, Path]) -> None:
    env = dict(EXPORTD_MAX_ATTEMPTS="3", EXPORTD_LEASE_SECONDS="2", EXPORTD_WORKER_JOBS="1")
    async with running(tally, data, **env) as (service, client):
        service.worker("tests.poison_worker")
        exports = [await client.create("csv", "poison"), await client.create("json", "demo"), await client.create("csv", "demo")]

        def restart_dead() -> None:  # what a process manager does
            if service.workers[-1].poll() is not None:
                service.worker("tests.poison_worker")

        await client.settle(exports, on_wait=restart_dead)


async def storage_quota(tally: Tally, data: dict[str, Path]) -> None:
    async with running(tally, data, EXPORTD_MAX_EXPORT_BYTES="800000") as (service, client):
        service.worker()
        await client.settle([await client.create("json", "demo"), await client.create("csv", "demo")])
        partials = list((service.root / "data" / ".partial").iterdir())
        if partials:
            tally.notes.append(f"{len(partials)} partial files left")


SCENARIOS = {
    "worker SIGKILL mid-export": worker_sigkill,
    "worker SIGTERM mid-export": worker_sigterm,
    "Redis SIGKILL + restart mid-export": redis_sigkill,
    "duplicate delivery": duplicate_delivery,
    "poison export (kills its worker)": poison_export,
    "storage quota": storage_quota,
}


def datasets(directory: Path) -> dict[str, Path]:
    paths = {"big": directory / "big.parquet", "demo": directory / "demo.parquet", "poison": directory / "poison.parquet"}
    pq.write_table(demo.table(rows=200_000, seed=5), paths["big"], row_group_size=20_000)
    pq.write_table(demo.table(rows=3000), paths["demo"])
    pq.write_table(demo.table(rows=500).append_column("poison", pa.array(["x"] * 500)), paths["poison"])
    return paths


async def main(runs: int, only: str | None) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="exportd-fault-data-") as tmp:
        data = datasets(Path(tmp))
        for name, scenario in SCENARIOS.items():
            if only and only.lower() not in name.lower():
                continue
            tally = Tally()
            for _ in range(runs):
                await scenario(tally, data)
            rows.append((name, runs, tally))
            print(f"  {name}: {tally.acknowledged} acknowledged, {tally.ready} ready, {tally.failed} failed, {tally.lost} lost",
                  flush=True)
    print("\n| scenario | runs | acknowledged | ready | failed with reason | lost |\n|---|---|---|---|---|---|")
    for name, count, tally in rows:
        print(f"| {name} | {count} | {tally.acknowledged} | {tally.ready} | {tally.failed} | {tally.lost} |")
    for name, _, tally in rows:
        for note in tally.notes:
            print(f"note ({name}): {note}")
    if any(t.lost for _, _, t in rows):
        sys.exit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.only))
