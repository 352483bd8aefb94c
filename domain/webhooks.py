"""Webhooks: an export's `notify_url` is told of each terminal change (ready, failed, rejected,
expired) by a POST of `{"event": "export.<status>", "export": <the resource>}`, signed with
`X-Exportd-Signature: sha256=<hex HMAC-SHA256 of the body>` under its owner's webhook secret.

The first attempt's arq job is queued by the compare-and-set that makes the change (ExportRepo),
so a change is told exactly when it is made, once; each later attempt is its own job, queued by
the one before with a growing delay, for 24 hours. A target is a public address unless the
operator allows private ones (EXPORTD_WEBHOOK_ALLOW_PRIVATE=1); link-local ones, where cloud
metadata services answer, never. The address is checked when the export is created and again,
as resolved then, at each attempt, which connects to exactly the address it checked.

A user's secret is not stored: it is an HMAC, under the service's secret key, of their name and
a random salt kept in Redis, so rotating it is a new salt and Redis alone gives no secret away.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis

from domain import keys, queue
from domain.errors import Invalid

NOTIFY = "notify_export"  # the arq function that makes one attempt
MAX_URL = 2000  # characters of a notify_url
RETRY_WINDOW = 24 * 3600  # seconds after a change during which a failed attempt is tried again
LONGEST_WAIT = 4 * 3600  # seconds between two attempts at most
JOB_EXPIRES_MS = 24 * 3600 * 1000  # as arq's own default for a job not deferred

# Cloud metadata services: link-local (169.254.169.254, fe80::), and those that are not.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")}


def check_url(value: Any) -> str:
    """The notify_url of a request body, or a 400 naming the field: http(s), a host, bounded."""
    if not isinstance(value, str) or not value:
        raise Invalid("the field 'notify_url' must be a URL (http:// or https://)", field="notify_url")
    if len(value) > MAX_URL:
        raise Invalid(f"the field 'notify_url' holds {len(value)} characters; at most {MAX_URL}", field="notify_url")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise Invalid(f"the field 'notify_url' is not a URL: {exc}", field="notify_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("the field 'notify_url' must be an http:// or https:// URL with a host", field="notify_url")
    if parts.username or parts.password:
        raise Invalid("the field 'notify_url' may not carry a user name or password", field="notify_url")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise Invalid("the field 'notify_url' may not hold spaces or control characters", field="notify_url")
    return value


def refusal(address: str, allow_private: bool) -> str | None:
    """Why a webhook may not go to `address` (an IP address), or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0) is no part of it
    if isinstance(ip, ipaddress.IPv6Address):  # an IPv4 address inside one is judged as itself
        if ip.ipv4_mapped is not None or ip.sixtofour is not None:
            ip = ip.ipv4_mapped or ip.sixtofour
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if (ip.is_link_local or ip in METADATA or ip.is_unspecified or ip.is_multicast
            or (ip.is_reserved and not ip.is_loopback)):
        return "a link-local, metadata, multicast or reserved address, where webhooks never go"
    if not allow_private and (ip.is_loopback or ip.is_private or not ip.is_global):
        return ("a private or loopback address: webhooks go to public addresses only "
                "(EXPORTD_WEBHOOK_ALLOW_PRIVATE=1 allows them)")
    return None


class Unreachable(Exception):
    """The URL's host cannot be used: it does not resolve (refused False: that may pass), or
    to an address webhooks may not go to (refused True)."""

    def __init__(self, message: str, refused: bool):
        super().__init__(message)
        self.refused = refused


async def resolve(url: str, allow_private: bool) -> list[tuple]:
    """The addresses (getaddrinfo's tuples) of the URL's host, every one of them allowed;
    Unreachable otherwise. One forbidden address refuses the host: which one a client would
    connect to is not ours to choose."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unreachable(f"{host} could not be resolved: {exc}", refused=False) from None
    for *_, sockaddr in infos:
        if (why := refusal(sockaddr[0], allow_private)) is not None:
            raise Unreachable(f"{host} resolves to {sockaddr[0]}, {why}", refused=True)
    return infos


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event(status: str) -> str:
    return f"export.{status}"


def wait_before(attempt: int, first_wait: int) -> float:
    """Seconds between attempt `attempt` and the next: doubling from `first_wait`, at most
    LONGEST_WAIT."""
    return float(min(first_wait * 2 ** min(attempt - 1, 30), LONGEST_WAIT))


def tries_again(attempt: int, first_wait: int) -> bool:
    """Whether an attempt after `attempt` still falls within RETRY_WINDOW of the change."""
    return sum(wait_before(n, first_wait) for n in range(1, attempt + 1)) <= RETRY_WINDOW


def first_attempt(queue_name: str, export_id: str, status: str) -> dict[str, Any]:
    """The arq job of the first attempt at telling the change into `status`, for the
    compare-and-set that makes it (domain/cas.py's "enqueue": queued only when the export has a
    notify_url); each later attempt is queued through arq by the one before."""
    job_id = keys.notify_job_id(export_id, status, 1)
    at = int(time.time() * 1000)
    payload = serialize_job(NOTIFY, (export_id, status, 1), {}, None, at, serializer=queue.serialize)
    return {"if": "notify_url", "key": job_key_prefix + job_id, "result": result_key_prefix + job_id,
            "payload": payload.decode(), "px": JOB_EXPIRES_MS, "queue": queue_name, "score": at, "id": job_id}


class WebhookSecrets:
    def __init__(self, redis: Redis, server_secret: str):
        self.redis = redis
        self._key = server_secret.encode()

    def _derive(self, user: str, salt: str) -> str:
        mac = hmac.new(self._key, f"exportd-webhook\0{user}\0{salt}".encode(), hashlib.sha256).digest()
        return "whsec_" + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    async def get(self, user: str) -> str:
        """The user's webhook secret (its salt made the first time it is asked for)."""
        salt = await self.redis.hget(keys.WEBHOOK_SALTS, user)
        if salt is None:
            await self.redis.hsetnx(keys.WEBHOOK_SALTS, user, secrets.token_hex(16))
            salt = await self.redis.hget(keys.WEBHOOK_SALTS, user)
        return self._derive(user, salt)

    async def rotate(self, user: str) -> str:
        """A new secret for the user; the old one signs nothing from now on."""
        salt = secrets.token_hex(16)
        await self.redis.hset(keys.WEBHOOK_SALTS, user, salt)
        return self._derive(user, salt)
