"""Webhooks on real processes: a real aiohttp receiver on loopback (the service allows private
targets here), a real arq worker on a real Redis. Each terminal change of an export with a
notify_url is POSTed once, signed under its owner's webhook secret, retried after a 5xx with
every attempt recorded on the export; private targets are refused without the setting, at
creation and again at delivery, link-local ones always; redirects are not followed."""
from __future__ import annotations

import asyncio
import hashlib
import hmac

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq.constants import result_key_prefix

from api.app import create_app
from domain import keys, queue
from domain.exports import ExportRepo
from domain.webhooks import refusal, tries_again, wait_before
from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, export_body, export_id, headers, poll, wait_for


class Receiver:
    """An HTTP server on loopback that keeps every request and answers with the statuses it is
    told to, in turn (then 200)."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((dict(request.headers), await request.read()))
        status = self.answers.pop(0) if self.answers else 200
        if status in (301, 302, 307):
            return web.Response(status=status, headers={"Location": self.url + "/elsewhere"})
        return web.Response(status=status, text="noted")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        app.router.add_post("/elsewhere", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def events(self) -> list[dict]:
        return [orjson.loads(body) for _, body in self.seen]


@pytest.fixture
def settings(make_settings):
    return make_settings(webhook_allow_private=1, webhook_retry_seconds=1)


@pytest.fixture
async def receiver():
    r = Receiver()
    await r.start()
    yield r
    await r.runner.cleanup()


async def secret_of(client, token: str) -> str:
    response = await client.get("/api/v1/me", headers=headers(token))
    assert response.status == 200
    return (await response.json())["webhook_secret"]


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def current(client, export: str) -> dict:
    response = await client.get(f"/api/v1/exports/{export}", headers=headers(ADMIN_TOKEN))
    return await response.json()


async def test_a_ready_export_is_posted_signed_under_its_owners_secret(client, worker, demo_dataset, receiver, user_token):
    token = await user_token("ann")
    export = export_id(await create(client, token, "csv", notify_url=receiver.url + "/hook"))
    ready = await poll(client, token, export)
    await wait_for(lambda: asyncio.sleep(0, len(receiver.seen)), 20, "the webhook")
    (sent, body), = receiver.seen
    assert sent["X-Exportd-Signature"] == signed(await secret_of(client, token), body)
    assert sent["Content-Type"] == "application/json"
    event = orjson.loads(body)
    assert event["event"] == "export.ready"
    told = event["export"]
    for name in ("status", "download_link", "sha256", "file_size", "records_count", "notify_url", "owner"):
        assert told[name] == ready[name], name
    assert told["_links"]["self"]["href"] == ready["_links"]["self"]["href"]  # the links GET answers
    after = await wait_for(lambda: current(client, export), 10, "the attempt recorded")
    assert [(n["event"], n["attempt"], n["status_code"]) for n in after["notifications"]] == [("export.ready", 1, 200)]
    # another user's secret does not sign it
    assert signed(await secret_of(client, await user_token("bob")), body) != sent["X-Exportd-Signature"]


async def test_a_500_is_tried_again_and_each_attempt_is_recorded(client, worker, demo_dataset, receiver):
    receiver.answers = [500, 503]
    export = export_id(await create(client, ADMIN_TOKEN, "json", notify_url=receiver.url + "/hook"))
    await poll(client, ADMIN_TOKEN, export)

    async def three() -> dict | None:
        body = await current(client, export)
        return body if len(body["notifications"]) == 3 else None
    told = await wait_for(three, 30, "three attempts")
    attempts = told["notifications"]
    assert [(n["attempt"], n["status_code"]) for n in attempts] == [(1, 500), (2, 503), (3, 200)]
    assert attempts[0]["next_attempt_in"] == 1 and attempts[1]["next_attempt_in"] == 2
    assert "next_attempt_in" not in attempts[2]
    assert len(receiver.seen) == 3 and {e["event"] for e in receiver.events()} == {"export.ready"}
    secret = await secret_of(client, ADMIN_TOKEN)
    assert all(h["X-Exportd-Signature"] == signed(secret, b) for h, b in receiver.seen)


def test_the_attempts_back_off_for_24_hours():
    waits = [wait_before(n, 30) for n in range(1, 12)]
    assert waits[:4] == [30, 60, 120, 240] and max(waits) == 4 * 3600
    last = next(n for n in range(1, 100) if not tries_again(n, 30))
    assert 20 * 3600 < sum(wait_before(n, 30) for n in range(1, last)) <= 24 * 3600


async def test_an_export_born_ready_on_a_shared_file_is_told_too(client, worker, demo_dataset, receiver):
    first = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "jsonl")))
    shared = await create(client, ADMIN_TOKEN, "jsonl", notify_url=receiver.url + "/hook")
    assert shared["status"] == "ready" and shared["sha256"] == first["sha256"]
    await wait_for(lambda: asyncio.sleep(0, len(receiver.seen)), 20, "the webhook")
    (event,) = receiver.events()
    assert event["event"] == "export.ready" and event["export"]["_links"] == shared["_links"]


async def test_a_redirect_is_not_followed(client, worker, demo_dataset, receiver):
    receiver.answers = [302, 302]
    export = export_id(await create(client, ADMIN_TOKEN, "json", notify_url=receiver.url + "/hook"))
    await poll(client, ADMIN_TOKEN, export)

    async def answered() -> dict | None:
        body = await current(client, export)
        return body if any(n.get("status_code") == 200 for n in body["notifications"]) else None
    told = await wait_for(answered, 30, "a 2xx")
    assert [n["status_code"] for n in told["notifications"]] == [302, 302, 200]
    assert len(receiver.seen) == 3  # never /elsewhere: each request is one of the attempts


async def test_each_terminal_change_is_told_once_even_when_the_export_job_runs_twice(
        client, start_worker, demo_dataset, receiver, settings, state):
    body = export_body("csv", notify_url=receiver.url + "/hook")
    response = await client.post("/api/v1/exports", json=body, headers=headers(ADMIN_TOKEN))
    export = export_id(await response.json())
    pool = await queue.arq_pool(settings.redis_url, settings.queue_name)
    try:  # the same attempt delivered again under another job, as arq may
        await pool.enqueue_job(queue.RUN_EXPORT, export, 1, demo_dataset, _job_id="again", _queue_name=settings.queue_name)
    finally:
        await pool.aclose()
    start_worker()
    start_worker()
    await poll(client, ADMIN_TOKEN, export)
    await wait_for(lambda: state.exists(result_key_prefix + "again", result_key_prefix + keys.export_job_id(export, 1)),
                   20, "both deliveries of the export job to end")
    assert await ExportRepo(state).transition(export, "expired", expect=("ready",))
    assert not await ExportRepo(state).transition(export, "expired", expect=("ready",))  # a second sweep's try

    async def both() -> list | None:
        told = await current(client, export)
        return told["notifications"] if len(told["notifications"]) >= 2 else None
    notes = await wait_for(both, 20, "two notifications")
    await wait_for(lambda: state.exists(result_key_prefix + keys.notify_job_id(export, "expired", 1)), 10, "its job to end")
    assert sorted(e["event"] for e in receiver.events()) == ["export.expired", "export.ready"]
    assert sorted(n["event"] for n in notes) == ["export.expired", "export.ready"]
    assert [e["export"]["status"] for e in receiver.events() if e["event"] == "export.expired"] == ["expired"]


async def test_a_rejection_and_a_failure_are_told(client, start_worker, demo_dataset, receiver, make_settings, user_token):
    token = await user_token("carl")
    async with TestClient(TestServer(create_app(make_settings(webhook_allow_private=1, approval_rows=0)))) as strict:
        rejected = export_id(await create(strict, token, "csv", notify_url=receiver.url + "/hook"))
        response = await strict.post(f"/api/v1/exports/{rejected}/reject", json={"detail": "too big"},
                                     headers=headers(ADMIN_TOKEN))
        assert response.status == 200
    start_worker(make_settings(webhook_allow_private=1, max_export_bytes=100))  # every export fails
    failed = export_id(await create(client, ADMIN_TOKEN, "csv", notify_url=receiver.url + "/hook"))
    assert (await poll(client, ADMIN_TOKEN, failed))["status"] == "failed"
    await wait_for(lambda: asyncio.sleep(0, len(receiver.seen) >= 2), 20, "two webhooks")
    by_event = {e["event"]: e["export"] for e in receiver.events()}
    assert by_event.keys() == {"export.rejected", "export.failed"}
    assert by_event["export.rejected"]["detail"] == "too big" and by_event["export.rejected"]["status"] == "rejected"
    assert by_event["export.failed"]["_links"]["self"]["href"].endswith(failed)
    assert "100-byte limit" in by_event["export.failed"]["detail"]


async def test_private_targets_are_refused_without_the_setting(make_settings, demo_dataset, receiver):
    async with TestClient(TestServer(create_app(make_settings()))) as strict:
        for url in (receiver.url + "/hook", "http://localhost:9/hook", "http://10.1.2.3/", "http://[::1]:8080/",
                    "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/", "http://2130706433/"):
            response = await strict.post("/api/v1/exports", json=export_body("csv", notify_url=url),
                                         headers=headers(ADMIN_TOKEN))
            body = await response.json()
            assert response.status == 400 and body["error_code"] == "refused_notify_url", (url, body)
            assert body["field"] == "notify_url" and "EXPORTD_WEBHOOK_ALLOW_PRIVATE" in body["message"]


async def test_link_local_targets_are_refused_always(client, demo_dataset):
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[fd00:ec2::254]/",
                "http://100.100.100.200/", "http://0.0.0.0/", "http://224.0.0.1/"):
        response = await client.post("/api/v1/exports", json=export_body("csv", notify_url=url),
                                     headers=headers(ADMIN_TOKEN))
        body = await response.json()
        assert response.status == 400 and body["error_code"] == "refused_notify_url", (url, body)
    assert refusal("169.254.169.254", allow_private=True) and refusal("fe80::1%eth0", allow_private=True)
    for wrapped in ("::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1"):  # mapped, NAT64, 6to4
        assert refusal(wrapped, allow_private=True), wrapped
    assert refusal("64:ff9b::7f00:1", allow_private=False)
    assert refusal("127.0.0.1", allow_private=True) is None and refusal("127.0.0.1", allow_private=False)
    assert refusal("93.184.216.34", allow_private=False) is None


async def test_the_address_is_checked_again_at_delivery(client, start_worker, make_settings, demo_dataset, receiver):
    start_worker(make_settings(webhook_allow_private=0))  # the API allowed it; the worker, as it resolves now, does not
    export = export_id(await create(client, ADMIN_TOKEN, "csv", notify_url=receiver.url + "/hook"))
    await poll(client, ADMIN_TOKEN, export)

    async def recorded() -> list | None:
        return (await current(client, export))["notifications"] or None
    (note,) = await wait_for(recorded, 20, "the attempt")
    assert "status_code" not in note and "private or loopback" in note["error"] and "next_attempt_in" not in note
    await asyncio.sleep(1.5)  # past the first retry's delay: none was queued
    assert receiver.seen == [] and len((await current(client, export))["notifications"]) == 1


async def test_notify_url_is_validated(client, demo_dataset):
    for value, why in ((123, "must be a URL"), ("ftp://example.org/x", "http"), ("http://", "http"),
                       ("https://example.org/" + "x" * 2000, "at most 2000"), ("http://a:b@example.org/", "password"),
                       ("http://example.org:99999/", "not a URL"), ("http://exa mple.org/", "spaces")):
        response = await client.post("/api/v1/exports", json=export_body("csv", notify_url=value),
                                     headers=headers(ADMIN_TOKEN))
        body = await response.json()
        assert response.status == 400 and body["field"] == "notify_url" and why in body["message"], (value, body)


async def test_the_webhook_secret_rotates(client, worker, demo_dataset, receiver, user_token):
    token = await user_token("dora")
    first = await secret_of(client, token)
    assert first == await secret_of(client, token) and first.startswith("whsec_")
    response = await client.post("/api/v1/me/webhook_secret", headers=headers(token))
    assert response.status == 200
    rotated = (await response.json())["webhook_secret"]
    assert rotated != first and rotated == await secret_of(client, token)
    export = export_id(await create(client, token, "csv", notify_url=receiver.url + "/hook"))
    await poll(client, token, export)
    await wait_for(lambda: asyncio.sleep(0, len(receiver.seen)), 20, "the webhook")
    (sent, body), = receiver.seen
    assert sent["X-Exportd-Signature"] == signed(rotated, body) != signed(first, body)
    assert (await client.post("/api/v1/me/webhook_secret")).status == 401
