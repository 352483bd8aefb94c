"""Several hosts: two worker processes with data directories of their own (standing in for two
machines) share only Redis and the bucket; every export, whichever worker wrote it, downloads
from every web process (one redirecting to the bucket, one streaming), each with a data
directory of its own too."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from domain import keys
from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, download, export_id, poll, wait_for
from tests.test_reliability import spawn_worker  # noqa: F401 (a fixture)

pytestmark = pytest.mark.backends("s3")


async def test_exports_from_either_worker_download_from_any_web_process(
        make_settings, spawn_worker, demo_dataset, state, tmp_path):  # noqa: F811 (spawn_worker: the imported fixture)
    workers = [make_settings(data_dir=tmp_path / "worker-a"), make_settings(data_dir=tmp_path / "worker-b")]
    for host in workers:
        spawn_worker(EXPORTD_DATA_DIR=str(host.data_dir), EXPORTD_STORAGE_URL=host.storage_url,
                     AWS_ENDPOINT_URL=host.s3_endpoint, EXPORTD_WORKER_JOBS="1")

    async def both_alive():
        return await state.zcard(keys.WORKERS) == 2
    await wait_for(both_alive, 60, "both workers to start")

    web_a_settings = make_settings(data_dir=tmp_path / "web-a")
    web_b_settings = make_settings(data_dir=tmp_path / "web-b", s3_downloads="stream")
    async with TestClient(TestServer(create_app(web_a_settings))) as web_a, TestClient(TestServer(create_app(web_b_settings))) as web_b:
        webs = (web_a, web_b)
        exports = [export_id(await create(webs[i % 2], ADMIN_TOKEN, "csv", query={"limit": 12_000 - i})) for i in range(8)]
        for i, export in enumerate(exports):
            ready = await poll(webs[i % 2], ADMIN_TOKEN, export, timeout=90)
            assert ready["status"] == "ready", ready
            bodies = []
            for web in webs:
                status, body, _ = await download(web, ready["download_link"])
                assert status == 200 and len(body) == ready["file_size"]
                bodies.append(body)
            assert bodies[0] == bodies[1] and len(bodies[0].decode("utf-8-sig").splitlines()) > 12_000 - i
    for host in workers:  # each worker read the dataset version into its own host's cache: both wrote exports
        assert list((host.data_dir / "cache" / "datasets").rglob("*.parquet")), f"no export ran on {host.data_dir}"
        assert not (host.data_dir / "exports").exists()  # export files live in the bucket only
