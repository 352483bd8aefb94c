"""Per-client budgets on the Explore API and its streamed exports: past them a 429 with
Retry-After, counted per IP address (X-Forwarded-For believed only from a trusted proxy, read
from the right) or per API key, in Redis, so that every web process shares them."""
from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.clients import client_address
from tests.conftest import ADMIN_TOKEN

V2 = "/api/v2/catalog/datasets/demo-events"


async def statuses(client, path: str, count: int, **kwargs) -> list[int]:
    found = []
    for _ in range(count):
        response = await client.get(path, **kwargs)
        await response.read()
        found.append(response.status)
    return found


async def test_past_the_budget_an_anonymous_client_gets_429(make_settings, demo_dataset):
    settings = make_settings(explore_rate_limit=5)
    async with TestClient(TestServer(create_app(settings))) as client:
        assert await statuses(client, f"{V2}/records?limit=1", 5) == [200] * 5
        response = await client.get(f"{V2}/records?limit=1")
        body = await response.json()
        assert response.status == 429 and body["error_code"] == "too_many_requests", body
        assert 1 <= int(response.headers["Retry-After"]) <= 61 and "at most 5 Explore API requests" in body["message"]
        # the administrator is not counted; other routes are not either
        assert await statuses(client, f"{V2}/records?limit=1", 3, headers={"Authorization": f"Apikey {ADMIN_TOKEN}"}) == [200] * 3
        assert (await client.get("/api/openapi.json")).status == 200


async def test_streamed_exports_have_a_budget_of_their_own(make_settings, demo_dataset):
    settings = make_settings(explore_rate_limit=100, stream_rate_limit=2)
    async with TestClient(TestServer(create_app(settings))) as client:
        assert await statuses(client, f"{V2}/exports/csv?limit=1", 3) == [200, 200, 429]
        assert await statuses(client, "/explore/dataset/demo-events/download/?format=csv&limit=1", 1) == [429]
        assert await statuses(client, f"{V2}/records?limit=1", 2) == [200, 200]  # the Explore budget is not spent
        assert await statuses(client, f"{V2}/exports", 1) == [200]  # the list of formats is no streamed export


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(make_settings, demo_dataset):
    untrusted = make_settings(explore_rate_limit=2)
    async with TestClient(TestServer(create_app(untrusted))) as client:
        # a client that writes another address each time is still the peer it is
        found = [(await client.get(f"{V2}/records?limit=1", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status
                 for i in range(3)]
        assert found == [200, 200, 429]
    behind = make_settings(explore_rate_limit=2, trusted_proxies=("127.0.0.1",))
    async with TestClient(TestServer(create_app(behind))) as client:
        for visitor in ("198.51.100.7", "198.51.100.8"):
            forwarded = {"X-Forwarded-For": f"10.9.9.9, {visitor}"}  # the left end is the client's to write
            assert await statuses(client, f"{V2}/records?limit=1", 3, headers=forwarded) == [200, 200, 429]
        keyed = await statuses(client, f"{V2}/records?limit=1", 3,
                               headers={"X-Forwarded-For": "198.51.100.7", "Authorization": "Apikey some-key"})
        assert keyed == [200, 200, 429]  # a key is counted apart from the address it comes from


def test_the_forwarded_chain_is_read_from_the_right():
    proxies = ("10.0.0.0/8", "192.0.2.1")
    assert client_address("10.1.1.1", "198.51.100.1, 192.0.2.1", proxies) == "198.51.100.1"
    assert client_address("10.1.1.1", "6.6.6.6, 198.51.100.1, 10.2.2.2", proxies) == "198.51.100.1"
    assert client_address("198.51.100.9", "6.6.6.6", proxies) == "198.51.100.9"  # the peer is no proxy
    assert client_address("10.1.1.1", "not-an-ip", proxies) == "10.1.1.1"
    assert client_address("10.1.1.1", None, proxies) == "10.1.1.1"
    assert client_address("10.1.1.1", "6.6.6.6", ()) == "10.1.1.1"
