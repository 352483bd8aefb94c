"""The service around the exports: the OpenAPI document, health, Redis outages, settings."""
from __future__ import annotations

import os
import stat

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from domain.redis_server import free_port
from domain.settings import Settings, SettingsError
from tests import osdi
from tests.conftest import ADMIN_TOKEN


async def test_openapi_documents_every_route(client):
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = {(route.resource.canonical, route.method) for route in client.app.router.routes() if route.method != "*"}
    missing = served - documented
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"
    assert documented <= served
    assert ("/downloads/{export_id}/{file_name}", "HEAD") in documented
    assert sum(method == "HEAD" for _, method in documented) >= 5  # every file the API serves
    assert {f["name"] for f in document["x-formats"]} >= {"csv", "json", "jsonl"}


async def test_health_needs_redis_and_a_worker(client, worker):
    for _ in range(50):
        response = await client.get("/health")
        if response.status == 200:
            break
        import asyncio
        await asyncio.sleep(0.1)
    body = await response.json()
    assert response.status == 200, body
    assert body["redis"] == "ok" and body["workers"] and body["queue_depth"] == 0


async def test_health_without_workers_is_503(client):
    response = await client.get("/health")
    assert response.status == 503
    assert (await response.json())["workers"] == []


async def test_redis_unavailable_is_a_json_503(tmp_path):
    settings = Settings(data_dir=tmp_path, secret_key="k", admin_token=ADMIN_TOKEN,
                        redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get("/api/v1/exports", headers={"OSDI-API-Token": ADMIN_TOKEN})
        assert response.status == 503
        body = await response.json()
        assert body["error_code"] == "redis_unavailable" and response.headers["Retry-After"]


def test_secrets_are_generated_once_and_private(tmp_path):
    env = {"EXPORTD_DATA_DIR": str(tmp_path)}
    first, second = Settings.from_env(env), Settings.from_env(env)
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert first.admin_token == second.admin_token and first.admin_token != first.secret_key
    for name in ("secret_key", "admin_token"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_settings_from_the_environment(tmp_path):
    settings = Settings.from_env({
        "EXPORTD_DATA_DIR": str(tmp_path), "EXPORTD_SECRET_KEY": "abc", "EXPORTD_ADMIN_TOKEN": "tok",
        "EXPORTD_PORT": "9000", "EXPORTD_EXPORT_TTL": "60", "EXPORTD_APPROVAL_ROWS": "1000",
        "EXPORTD_REDIS_URL": "redis://example:6380/1",
    })
    assert (settings.port, settings.export_ttl, settings.approval_rows) == (9000, 60, 1000)
    assert (settings.secret_key, settings.admin_token, settings.redis_url) == ("abc", "tok", "redis://example:6380/1")
    assert "abc" not in repr(settings) and "tok" not in repr(settings)
    defaults = Settings.from_env({"EXPORTD_DATA_DIR": str(tmp_path)})
    assert (defaults.port, defaults.export_ttl, defaults.approval_rows, defaults.host) == (8080, 86400, None, "127.0.0.1")
    with pytest.raises(SettingsError):
        Settings.from_env({"EXPORTD_DATA_DIR": str(tmp_path), "EXPORTD_PORT": "eighty"})
    assert (defaults.worker_nice, Settings.from_env({"EXPORTD_DATA_DIR": str(tmp_path), "EXPORTD_WORKER_NICE": "0"}).worker_nice) == (10, 0)
    for nice in ("-5", "20"):
        with pytest.raises(SettingsError, match="WORKER_NICE"):
            Settings.from_env({"EXPORTD_DATA_DIR": str(tmp_path), "EXPORTD_WORKER_NICE": nice})


async def test_a_full_redis_is_a_json_503_not_a_500(client, state, demo_dataset):
    """Redis at maxmemory with noeviction refuses writes with OOM: the API says 503, try later."""
    await state.config_set("maxmemory", "1")
    try:
        response = await client.post("/api/v1/exports", json=osdi.export_body("csv"), headers=osdi.headers(ADMIN_TOKEN))
        body = await response.json()
    finally:
        await state.config_set("maxmemory", "0")
    assert response.status == 503, body
    assert body["error_code"] == "redis_unavailable" and "full" in body["message"] and response.headers["Retry-After"]
    assert (await client.post("/api/v1/exports", json=osdi.export_body("csv"),
                              headers=osdi.headers(ADMIN_TOKEN))).status == 201  # and fine again once it has room


async def test_metrics_count_exports_by_format(client, worker, demo_dataset):
    from tests.conftest import ADMIN_TOKEN as token
    from tests.osdi import create, export_id, poll

    await poll(client, token, export_id(await create(client, token, "csv")))
    await create(client, token, "csv")  # shares the ready file: ready at once
    response = await client.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if not line.startswith("#")}
    assert samples['exportd_exports_created_total{format="csv"}'] == 2
    assert samples['exportd_exports_ready_total{format="csv"}'] == 2
    assert samples['exportd_export_duration_seconds_count{format="csv"}'] == 1  # one file was written
    assert samples['exportd_export_duration_seconds_bucket{format="csv",le="+Inf"}'] == 1
    sizes = [samples[f'exportd_export_size_bytes_bucket{{format="csv",le="{le}"}}'] for le in ("1e+06", "1e+07", "1e+09", "+Inf")]
    assert sizes == [0, 1, 1, 1]  # the one written, 2.5 MB, in every bucket from 10 MB up
    assert samples['exportd_records_written_total{format="csv"}'] == 12_000
    assert "exportd_queue_depth" in samples


def test_logs_are_one_json_object_a_line():
    import logging

    import orjson

    from domain.logs import JsonFormatter

    record = logging.LogRecord("exportd.worker", logging.INFO, __file__, 1, "export ready", (), None)
    record.export, record.attempt, record.records = "e1", 2, 10
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["message"] == "export ready" and entry["level"] == "info" and entry["time"].endswith("Z")
    assert (entry["export"], entry["attempt"], entry["records"]) == ("e1", 2, 10)
