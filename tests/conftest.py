"""Fixtures: a real redis-server (one per test session, on a free port, in a temporary
directory, flushed before each test), the real aiohttp app on a real socket, and real arq
workers consuming the same queue.

Storage is the local data directory, or for tests marked `@pytest.mark.backends("local", "s3")`
(or modules with that `pytestmark`) each backend named in turn: "s3" is a bucket of a real
S3-compatible server (moto's, one per session, started on first use), under a prefix of the
test's own, emptied after it, with downloads redirected to presigned URLs; "s3-stream" the
same with downloads streamed through the web process."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator

import pyarrow.parquet as pq
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from domain import demo, queue
from domain.datasets import DatasetRepo, import_file
from domain.redis_server import RedisServer
from domain.settings import Settings
from domain.storage import Storage, open_storage
from domain.users import UserRepo
from tests.s3_server import CREDENTIALS, S3Server
from worker.prompt_worker import PromptWorker
from worker.settings import worker_settings

ADMIN_TOKEN = "test-admin-token"
BUCKET = "exportd-tests"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> RedisServer:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def demo_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo-events.parquet"
    pq.write_table(demo.table(), path)
    return path


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """A real S3-compatible server on 127.0.0.1 with the tests' bucket; AWS credentials (any
    will do) in the environment, for boto3 here and in worker processes."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        with S3Server(tmp_path_factory.mktemp("s3")) as server:
            server.client.create_bucket(Bucket=BUCKET)
            yield server


def pytest_generate_tests(metafunc) -> None:
    backends = metafunc.definition.get_closest_marker("backends")
    if backends and "storage_backend" in metafunc.fixturenames:
        metafunc.parametrize("storage_backend", backends.args, indirect=True)


@pytest.fixture
def storage_backend(request) -> str:
    return getattr(request, "param", "local")


@pytest.fixture
def make_settings(tmp_path, redis_server, storage_backend, request) -> Iterator[Callable[..., Settings]]:
    """make(**overrides): the test's settings; with the "s3" backend, files go to the bucket
    under a prefix of the test's own (shared by every make() of the test, as by the hosts of
    one deployment)."""
    bucket = {}
    if storage_backend in ("s3", "s3-stream"):
        server = request.getfixturevalue("s3_server")
        bucket = dict(storage_url=f"s3://{BUCKET}/{uuid.uuid4().hex}", s3_endpoint=server.url,
                      s3_downloads="stream" if storage_backend == "s3-stream" else "redirect")

    def make(**overrides) -> Settings:
        values = dict(data_dir=tmp_path / "data", secret_key="test-secret", admin_token=ADMIN_TOKEN,
                      redis_url=redis_server.url, export_ttl=3600, worker_jobs=2, **bucket)
        values.update(overrides)
        return Settings(**values)
    yield make
    if bucket:  # empty the test's prefix: the server keeps objects in memory
        client = request.getfixturevalue("s3_server").client
        prefix = bucket["storage_url"].removeprefix(f"s3://{BUCKET}/") + "/"
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            if page.get("Contents"):
                client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": o["Key"]} for o in page["Contents"]]})


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


def stored_keys(settings: Settings, prefix: str) -> list[str]:
    """The keys of the files stored under `prefix/`, in the data directory or the bucket."""
    storage: Storage = open_storage(settings)
    try:
        return storage.keys(prefix)
    finally:
        storage.close()


async def load_dataset(settings: Settings, source: Path, dataset_id: str, title: str = "") -> None:
    storage = open_storage(settings)
    try:
        dataset = import_file(source, dataset_id, storage, title=title)
    finally:
        storage.close()
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
async def start_worker(settings) -> AsyncIterator[Callable[..., PromptWorker]]:
    """start_worker(**overrides) runs a real arq worker on the test's event loop until the
    test ends; it fails the test if the worker crashed."""
    running: list[tuple[PromptWorker, asyncio.Task]] = []

    def start(worker_settings_: Settings | None = None, **overrides) -> PromptWorker:
        kwargs = worker_settings(worker_settings_ or settings)
        kwargs.update(dict(poll_delay=0.05, handle_signals=False), **overrides)
        worker = PromptWorker(**kwargs)
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
async def worker(start_worker) -> PromptWorker:
    return start_worker()


@pytest.fixture
async def user_token(state) -> Callable:
    repo = UserRepo(state, ADMIN_TOKEN)

    async def make(name: str, admin: bool = False) -> str:
        await repo.add(name, admin=admin)
        return await repo.new_token(name)
    return make


@pytest.fixture
def worker_process(settings, tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:
    """worker_process(module="worker", **env) starts a real worker process (`python -m
    module`) on the test's Redis and data directory, its output in tmp_path; every one is
    killed (woken first, if stopped) when the test ends."""
    processes: list[subprocess.Popen] = []

    def spawn(module: str = "worker", **env: str) -> subprocess.Popen:
        with open(tmp_path / f"worker-{len(processes)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "EXPORTD_DATA_DIR": str(settings.data_dir), "EXPORTD_REDIS_URL": settings.redis_url,
                     "EXPORTD_SECRET_KEY": settings.secret_key, "EXPORTD_ADMIN_TOKEN": settings.admin_token, **env})
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait(10)
