"""A full disk and a full Redis, for real: the data directory on a small tmpfs (skipped where
mounting is not permitted), Redis at its maxmemory. An upload that does not fit answers 507
and keeps nothing; /health is degraded (503, saying why) below EXPORTD_MIN_FREE_BYTES or while
Redis refuses writes; an export that fills the disk fails with a reason and leaves no half
file; the expiry sweep removes the export directories deletions and expiries left empty."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from domain import keys
from domain.exports import ExportRepo
from domain.timeutil import now
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.osdi import create, export_id, headers, poll, wait_for
from worker.settings import shutdown, startup
from worker.sweep import EMPTY_DIR_GRACE, sweep

DISK = 2 * 1024 * 1024
UPLOADS = "/api/management/v2/files/"


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, unmounted at the end whatever happened."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip() or result.returncode}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def upload_form(size: int) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(b"x" * size), filename="big.csv", content_type="text/csv")
    return form


async def health(client) -> tuple[int, dict]:
    response = await client.get("/health")
    return response.status, await response.json()


async def test_an_upload_past_the_free_space_is_a_507_and_keeps_nothing(make_settings, small_disk):
    settings = make_settings(data_dir=small_disk)
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.post(UPLOADS, data=upload_form(3 * 1024 * 1024), headers=headers(ADMIN_TOKEN))
        body = await response.json()
        assert response.status == 507, body
        assert body["error_code"] == "insufficient_storage" and "disk is full" in body["message"]
        assert body["error"] == body["message"]
        assert files_under(small_disk) == []  # no partial, no file
        listed = await (await client.get(UPLOADS, headers=headers(ADMIN_TOKEN))).json()
        assert listed["total_count"] == 0
        small = await client.post(UPLOADS, data=upload_form(10_000), headers=headers(ADMIN_TOKEN))
        assert small.status == 201, await small.json()  # the space given back serves the next one


async def test_health_is_degraded_below_the_free_space_floor(make_settings, small_disk, start_worker):
    settings = make_settings(data_dir=small_disk, min_free_bytes=DISK // 2)
    start_worker(settings)
    async with TestClient(TestServer(create_app(settings))) as client:
        async def healthy():
            status, body = await health(client)
            return body if status == 200 else None
        body = await wait_for(healthy, 10, "/health to be ok")
        assert body["status"] == "ok" and "reasons" not in body
        assert body["disk"]["min_free_bytes"] == DISK // 2 and body["disk"]["free_bytes"] > DISK // 2
        (small_disk / "filler").write_bytes(b"x" * (DISK * 3 // 4))
        status, body = await health(client)
        assert status == 503 and body["status"] == "degraded"
        assert body["disk"]["free_bytes"] < DISK // 2
        assert any("EXPORTD_MIN_FREE_BYTES" in reason for reason in body["reasons"]), body
        assert body["redis"] == "ok" and body["workers"]  # the rest is as it was
        (small_disk / "filler").unlink()
        assert (await health(client))[0] == 200


async def test_health_is_degraded_while_redis_refuses_writes(client, state, start_worker):
    start_worker()
    async def healthy():
        return (await health(client))[0] == 200
    await wait_for(healthy, 10, "/health to be ok")
    await state.config_set("maxmemory", "1")  # noeviction: every write is refused (OOM), reads still answer
    try:
        status, body = await health(client)
    finally:
        await state.config_set("maxmemory", "0")
    assert status == 503 and body["status"] == "degraded" and body["redis"] == "refusing_writes"
    assert any("refuses writes" in reason for reason in body["reasons"]), body
    assert (await health(client))[0] == 200
    assert await state.ttl(keys.HEALTH_PROBE) > 0  # the probe expires on its own


@pytest.mark.parametrize("export_type", ["csv", "geojson", "parquet", "xlsx", "shp"])
async def test_an_export_that_fills_the_disk_fails_and_leaves_no_half_file(make_settings, small_disk, demo_file,
                                                                          start_worker, export_type):
    settings = make_settings(data_dir=small_disk)
    await load_dataset(settings, demo_file, "demo-events")  # 0.75 MB of the 2 MiB
    filler = small_disk / "filler"
    filler.write_bytes(b"x" * (shutil.disk_usage(small_disk).free - 150_000))  # every format's file is larger
    start_worker(settings)
    async with TestClient(TestServer(create_app(settings))) as client:
        export = export_id(await create(client, ADMIN_TOKEN, export_type))
        failed = await poll(client, ADMIN_TOKEN, export, timeout=60)
        assert failed["status"] == "failed", failed
        assert "ran out of disk space" in failed["detail"] and "download_link" not in failed
        assert list((small_disk / ".partial").iterdir()) == []
        assert files_under(small_disk / "exports") == []  # nothing published under the export either
        metrics = await (await client.get("/metrics")).text()
        assert f'exportd_exports_failed_total{{format="{export_type}"}} 1' in metrics
        filler.unlink()
        small = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv", query={"limit": 5})))
        assert small["status"] == "ready"  # the worker goes on


async def test_the_sweep_removes_empty_export_directories(settings, client, demo_dataset, start_worker, state):
    start_worker()
    exports = ExportRepo(state)
    deleted, expiring, kept = [export_id(await create(client, ADMIN_TOKEN, "csv", query={"limit": n})) for n in (1, 2, 3)]
    for export in (deleted, expiring, kept):
        assert (await poll(client, ADMIN_TOKEN, export))["status"] == "ready"
    assert (await client.delete(f"/api/v1/exports/{deleted}", headers=headers(ADMIN_TOKEN))).status == 200
    await exports.update(expiring, expect=("ready",), expires_at=now() - timedelta(seconds=1))
    await state.zadd(keys.EXPORTS_READY, {expiring: time.time() - 1})
    root = settings.data_dir / "exports"
    ctx = {"settings": settings}
    await startup(ctx)
    try:
        first = await sweep(ctx)
        assert first["expired"] == 1
        # deletion and expiry removed the files; the directories they leave are fresh, so kept a while
        assert (root / deleted).is_dir() and (root / expiring).is_dir()
        assert files_under(root / deleted) == files_under(root / expiring) == []
        past = time.time() - EMPTY_DIR_GRACE - 1
        for path in (p for p in root.rglob("*") if p.is_dir()):
            os.utime(path, (past, past))  # as if a minute had gone by
        second = await sweep(ctx)
        assert second["dirs_removed"] >= 2, second
        assert not (root / deleted).exists() and not (root / expiring).exists()
        assert files_under(root / kept)  # a ready export's directory and file stay, however old
    finally:
        await shutdown(ctx)
    assert (await poll(client, ADMIN_TOKEN, kept))["status"] == "ready"
    again = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv", query={"limit": 4})))
    assert again["status"] == "ready"  # an export still publishes into the pruned tree


def test_the_free_space_floor_is_a_setting(tmp_path):
    from domain.settings import Settings, SettingsError

    env = {"EXPORTD_DATA_DIR": str(tmp_path), "EXPORTD_SECRET_KEY": "k", "EXPORTD_ADMIN_TOKEN": "t"}
    assert Settings.from_env(env).min_free_bytes == 1 << 30
    assert Settings.from_env({**env, "EXPORTD_MIN_FREE_BYTES": "0"}).min_free_bytes == 0  # never degraded for it
    assert Settings.from_env({**env, "EXPORTD_MIN_FREE_BYTES": "5000000000"}).min_free_bytes == 5_000_000_000
    for wrong in ("-1", "1G"):
        with pytest.raises(SettingsError, match="MIN_FREE_BYTES"):
            Settings.from_env({**env, "EXPORTD_MIN_FREE_BYTES": wrong})
