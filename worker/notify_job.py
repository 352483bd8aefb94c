"""The webhook job: one attempt at telling an export's notify_url of a terminal change
(domain/webhooks.py). Each attempt is its own arq job, `notify:<id>:<status>:<n>`, recorded on
the export whatever its outcome; a failed one (no answer, or not a 2xx) queues attempt n + 1
after a growing delay until 24 hours have passed. A refused address is not tried again: it is
the URL that is wrong. Redirects are not followed, and the connection goes to the address that
was checked, so a name that resolves anew (DNS rebinding) cannot move it elsewhere."""
from __future__ import annotations

import logging
import socket
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult

from api.hal import export_resource
from domain import keys, webhooks
from domain.errors import NotFound
from domain.exports import ExportRepo
from domain.timeutil import iso, now

log = logging.getLogger("exportd.webhooks")

CONNECT_SECONDS = 5
TOTAL_SECONDS = 10  # an attempt's whole exchange: a receiver should answer at once and work later
USER_AGENT = "exportd-webhooks"


async def notify_export(ctx: dict[str, Any], export_id: str, status: str, attempt: int = 1) -> dict[str, Any]:
    exports: ExportRepo = ctx["exports"]
    settings = ctx["settings"]
    try:
        export = await exports.get(export_id)
    except NotFound:
        return {"export": export_id, "outcome": "deleted"}
    name = webhooks.event(status)
    made = [n for n in export.notifications if n.get("event") == name and n.get("attempt") == attempt]
    if made:  # this job delivered twice: the next attempt queued, if it was to be (arq runs one job id once)
        if "next_attempt_in" in made[0]:
            await _queue_next(ctx, export_id, status, attempt)
        return {"export": export_id, "outcome": f"attempt {attempt} already made"}
    body = orjson.dumps({"event": name, "export": export_resource(export, export.origin, settings.origin_system,
                                                                   settings.secret_key)})
    secret = await webhooks.WebhookSecrets(exports.redis, settings.secret_key).get(export.owner)
    result = await deliver(export.notify_url, body, webhooks.sign(secret, body), bool(settings.webhook_allow_private))
    delivered = 200 <= result.get("status_code", 0) < 300
    again = not delivered and not result.pop("refused", False) and webhooks.tries_again(attempt, settings.webhook_retry_seconds)
    record = {"event": name, "attempt": attempt, "date": iso(now()), **result}
    if again:
        record["next_attempt_in"] = webhooks.wait_before(attempt, settings.webhook_retry_seconds)
    if not await exports.record_notification(export_id, status, attempt, record):
        return {"export": export_id, "outcome": "deleted"}
    log.info("webhook %s attempt %d: %s", name, attempt, result, extra={"export": export_id})
    if again:
        await _queue_next(ctx, export_id, status, attempt)
    return {"export": export_id, "outcome": "delivered" if delivered else "failed", **result}


async def _queue_next(ctx: dict[str, Any], export_id: str, status: str, attempt: int) -> None:
    settings = ctx["settings"]
    await ctx["redis"].enqueue_job(webhooks.NOTIFY, export_id, status, attempt + 1,
                                   _job_id=keys.notify_job_id(export_id, status, attempt + 1),
                                   _queue_name=settings.queue_name,
                                   _defer_by=webhooks.wait_before(attempt, settings.webhook_retry_seconds))


class _Checked(AbstractResolver):
    """The addresses already resolved and checked, for aiohttp to connect to: no second look-up."""

    def __init__(self, infos: list[tuple]):
        self.infos = infos

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=sockaddr[0], port=port, family=fam, proto=proto,
                              flags=socket.AI_NUMERICHOST) for fam, _, proto, _, sockaddr in self.infos]

    async def close(self) -> None:
        pass


async def deliver(url: str, body: bytes, signature: str, allow_private: bool) -> dict[str, Any]:
    """POST `body` to `url`: {"status_code": N}, or {"error": why} (with "refused": True when
    the address may not be used)."""
    try:
        infos = await webhooks.resolve(url, allow_private)
    except webhooks.Unreachable as exc:
        return {"error": str(exc), "refused": True} if exc.refused else {"error": str(exc)}
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Exportd-Signature": signature}
    connector = aiohttp.TCPConnector(resolver=_Checked(infos), use_dns_cache=False, force_close=True)
    timeout = aiohttp.ClientTimeout(total=TOTAL_SECONDS, sock_connect=CONNECT_SECONDS)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                return {"status_code": response.status}
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
