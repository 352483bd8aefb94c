"""Fixtures: a real redis-server (one per test session, on a free port, in a temporary
directory, flushed before each test), the real aiohttp app on a real socket, and real arq
workers consuming the same queue."""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import AsyncIterator, Callable

import pyarrow.parquet as pq
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from arq.worker import Worker

from api.app import create_app
from domain import demo, queue
from domain.datasets import DatasetRepo, import_file
from domain.redis_server import RedisServer
from domain.settings import Settings
from domain.storage import LocalStorage
from domain.users import UserRepo
from worker.settings import worker_settings

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> RedisServer:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def demo_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo-events.parquet"
    pq.write_table(demo.table(), path)
    return path


@pytest.fixture
def make_settings(tmp_path, redis_server) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        values = dict(data_dir=tmp_path / "data", secret_key="test-secret", admin_token=ADMIN_TOKEN,
                      redis_url=redis_server.url, export_ttl=3600, worker_jobs=2)
        values.update(overrides)
        return Settings(**values)
    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture(autouse=True)
def _flush(request) -> None:
    """Every test that uses Redis starts from an empty database."""
    if "redis_server" in request.fixturenames:
        server = request.getfixturevalue("redis_server")
        client = redis.Redis.from_url(server.url)
        client.flushall()
        client.close()


@pytest.fixture
async def state(settings) -> AsyncIterator:
    client = queue.connect(settings.redis_url)
    yield client
    await client.aclose()


async def load_dataset(settings: Settings, source: Path, dataset_id: str, title: str = "") -> None:
    dataset = import_file(source, dataset_id, LocalStorage(settings.data_dir), title=title)
    client = queue.connect(settings.redis_url)
    try:
        await DatasetRepo(client).save(dataset)
    finally:
        await client.aclose()


@pytest.fixture
async def demo_dataset(settings, demo_file) -> str:
    await load_dataset(settings, demo_file, demo.DATASET_ID, demo.TITLE)
    return demo.DATASET_ID


@pytest.fixture
async def client(settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


@pytest.fixture
async def start_worker(settings) -> AsyncIterator[Callable[..., Worker]]:
    """start_worker(**overrides) runs a real arq worker on the test's event loop until the
    test ends; it fails the test if the worker crashed."""
    running: list[tuple[Worker, asyncio.Task]] = []

    def start(worker_settings_: Settings | None = None, **overrides) -> Worker:
        kwargs = worker_settings(worker_settings_ or settings)
        kwargs.update(dict(poll_delay=0.05, handle_signals=False), **overrides)
        worker = Worker(**kwargs)
        running.append((worker, asyncio.create_task(worker.async_run())))
        return worker

    yield start
    for worker, task in running:
        if task.done() and task.exception():
            raise task.exception()
        for _ in range(200):  # let running jobs end rather than cancelling them halfway
            if all(t.done() for t in worker.tasks.values()):
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()


@pytest.fixture
async def worker(start_worker) -> Worker:
    return start_worker()


@pytest.fixture
async def user_token(state) -> Callable:
    repo = UserRepo(state, ADMIN_TOKEN)

    async def make(name: str, admin: bool = False) -> str:
        await repo.add(name, admin=admin)
        return await repo.new_token(name)
    return make
