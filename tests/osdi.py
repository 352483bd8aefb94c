"""What a client of the OSDI export API does: create an export, poll it, download it."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from domain import exports as ex

TERMINAL = (ex.READY, ex.FAILED, ex.REJECTED, ex.EXPIRED)
STATUSES = ex.STATUSES


def headers(token: str) -> dict[str, str]:
    return {"OSDI-API-Token": token}


def export_body(export_type: str, dataset_id: str = "demo-events", **extra: Any) -> dict[str, Any]:
    return {
        "export_type": export_type,
        "name": f"{dataset_id} as {export_type}",
        "_links": {"osdi:resource": {"href": f"http://portal.example/api/v2/catalog/datasets/{dataset_id}"}},
        **extra,
    }


def export_id(resource: dict[str, Any]) -> str:
    return resource["_links"]["self"]["href"].rsplit("/", 1)[1]


async def create(client: TestClient, token: str, export_type: str = "csv", **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/exports", json=export_body(export_type, **extra), headers=headers(token))
    body = await response.json()
    assert response.status == 201, body
    return body


async def poll(client: TestClient, token: str, export: str, until=TERMINAL, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/api/v1/exports/{export}", headers=headers(token))
        body = await response.json()
        assert response.status == 200, body
        if body["status"] in until:
            return body
        assert time.monotonic() < deadline, f"export {export} still {body['status']} after {timeout} s"
        await asyncio.sleep(0.05)


async def download(client: TestClient, link: str, **kwargs: Any) -> tuple[int, bytes, Any]:
    path = link.split("://", 1)[1].split("/", 1)[1]
    response = await client.get("/" + path, **kwargs)
    return response.status, await response.read(), response.headers


async def wait_for(predicate, timeout: float, what: str):
    """The first true value of the awaited `predicate()`, asked every 0.1 s for `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.1)
