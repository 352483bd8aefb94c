"""The Export resource: its fields, its status workflow and its Redis repository.

initializing → (pending_approval → rejected | queued) | queued → processing → ready → expired,
plus failed (with a detail) from any live state. Deletion removes the export from any state.

Every status change is a compare-and-set in one Lua script: it applies only when the export is
in one of the expected states (and, where asked, at the expected attempt), so a late, slow or
duplicated worker can never overwrite a newer state.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, fields as dc_fields
from datetime import datetime, timedelta
from typing import Any, Iterable

import orjson
from redis.asyncio import Redis

from domain import keys, metrics, webhooks
from domain.cas import APPLIED, MISSING, CompareAndSet
from domain.errors import Conflict, NotFound
from domain.timeutil import iso, now, parse_iso

INITIALIZING = "initializing"
PENDING_APPROVAL = "pending_approval"
REJECTED = "rejected"
QUEUED = "queued"
PROCESSING = "processing"
READY = "ready"
EXPIRED = "expired"
FAILED = "failed"
STATUSES = (INITIALIZING, PENDING_APPROVAL, REJECTED, QUEUED, PROCESSING, READY, EXPIRED, FAILED)
LIVE = (INITIALIZING, PENDING_APPROVAL, QUEUED, PROCESSING)  # may still become ready
NOTIFIED = (READY, FAILED, REJECTED, EXPIRED)  # the changes an export's notify_url is told of
NOTIFICATION = "notification:"  # hash fields notification:<status>:<attempt>: JSON, one webhook attempt each

# from-state → the states it may move to
TRANSITIONS: dict[str, tuple[str, ...]] = {
    INITIALIZING: (PENDING_APPROVAL, QUEUED, FAILED),
    PENDING_APPROVAL: (QUEUED, REJECTED),
    QUEUED: (PROCESSING, FAILED),
    PROCESSING: (PROCESSING, READY, FAILED, QUEUED),
    READY: (EXPIRED,),
    REJECTED: (),
    EXPIRED: (),
    FAILED: (),
}


def sources(target: str) -> tuple[str, ...]:
    """The states from which `target` can be reached."""
    return tuple(s for s, targets in TRANSITIONS.items() if target in targets)


LEASE_SECONDS = 15  # default: a processing export whose lease is not renewed for this long is run again


@dataclass
class Export:
    id: str
    owner: str
    name: str
    export_type: str
    dataset_id: str
    resource_href: str
    status: str = INITIALIZING
    options: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    created: datetime | None = None
    modified: datetime | None = None
    action_date: datetime | None = None
    approved_date: datetime | None = None
    processed_date: datetime | None = None
    expires_at: datetime | None = None
    file_name: str = ""
    size: int | None = None
    records_total: int | None = None
    records_done: int = 0
    records_skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    attempt: int = 0
    lapses: int = 0  # attempts whose worker died (lease lapsed)
    priority: int = 0  # set by an administrator: a queued export of higher priority is taken first
    changes_since: str = ""  # a delta export: the version or snapshot its changes are since (domain/delta.py)
    base_key: str = ""  # that version's storage key
    file_key: str = ""  # storage key of the file a ready export serves (perhaps another export's: shared)
    sha256: str = ""  # hex SHA-256 of that file, taken as it was written
    notify_url: str = ""  # told of each terminal change (domain/webhooks.py)
    origin: str = ""  # scheme://host the export was asked for at: the links of the resource a webhook sends
    expire_once_downloaded: bool = False  # expires when every byte of its file was sent once (domain/downloaded.py)
    notifications: list[dict[str, Any]] = field(default_factory=list)  # webhook attempts, oldest first; not a field of its own

    JSON_FIELDS = ("options", "query", "warnings")
    TIME_FIELDS = ("created", "modified", "action_date", "approved_date", "processed_date", "expires_at")
    INT_FIELDS = ("size", "records_total", "records_done", "records_skipped", "attempt", "lapses", "priority")
    BOOL_FIELDS = ("expire_once_downloaded",)

    @classmethod
    def new(cls, **values: Any) -> "Export":
        moment = now()
        return cls(id=str(uuid.uuid4()), created=moment, modified=moment, action_date=moment, **values)

    def to_hash(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in dc_fields(self):
            if f.name != "notifications":
                out[f.name] = encode(f.name, getattr(self, f.name))
        return out

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> "Export":
        values: dict[str, Any] = {"notifications": sorted(
            (orjson.loads(text) for name, text in raw.items() if name.startswith(NOTIFICATION)),
            key=lambda n: (n.get("date", ""), n.get("attempt", 0)))}
        for f in dc_fields(cls):
            if f.name not in raw or f.name == "notifications":
                continue
            text = raw[f.name]
            if f.name in cls.JSON_FIELDS:
                values[f.name] = orjson.loads(text) if text else f.default_factory()  # type: ignore[misc]
            elif f.name in cls.TIME_FIELDS:
                values[f.name] = parse_iso(text)
            elif f.name in cls.INT_FIELDS:
                values[f.name] = int(text) if text != "" else None
            elif f.name in cls.BOOL_FIELDS:
                values[f.name] = text == "True"
            else:
                values[f.name] = text
        return cls(**values)

    @property
    def progress(self) -> dict[str, int | None]:
        return {"records_done": self.records_done, "records_total": self.records_total}


def encode(name: str, value: Any) -> str:
    """A field's value as the string kept in the Redis hash."""
    if name in Export.JSON_FIELDS:
        return orjson.dumps(value).decode()
    if isinstance(value, datetime):
        return iso(value) or ""
    if value is None:
        return ""
    return str(value)


WAITING_TO_RUN = (INITIALIZING, PENDING_APPROVAL, QUEUED)
# KEYS: the export's hash. ARGV: the priority, then the statuses of an export waiting to run.
_PRIORITIZE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= ARGV[2] and status ~= ARGV[3] and status ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'priority', ARGV[1])
return 1
"""


class ExportRepo:
    def __init__(self, redis: Redis, lease_seconds: float = LEASE_SECONDS, queue_name: str = "exportd:queue"):
        self.redis = redis
        self.lease_seconds = lease_seconds
        self.queue_name = queue_name  # where the webhook jobs its changes queue go
        self._cas = CompareAndSet(redis)

    async def create(self, export: Export) -> None:
        """Store a new export, counted created (and ready, when born ready) in the same
        transaction."""
        score = export.created.timestamp() if export.created else now().timestamp()
        counts = [metrics.counted("created", export.export_type)]
        if export.status == READY:
            counts.append(metrics.counted("ready", export.export_type))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.export(export.id), mapping=export.to_hash())
            pipe.zadd(keys.EXPORTS_ALL, {export.id: score})
            pipe.zadd(keys.exports_of(export.owner), {export.id: score})
            pipe.zadd(keys.exports_for(export.dataset_id), {export.id: score})
            pipe.zadd(keys.exports_in(export.status), {export.id: score})
            if export.status == READY and export.expires_at is not None:  # born ready: a shared file
                pipe.zadd(keys.EXPORTS_READY, {export.id: export.expires_at.timestamp()})
            for command in counts:
                pipe.execute_command(*command)
            if export.status in NOTIFIED and export.notify_url:  # born ready: told at once
                job = webhooks.first_attempt(self.queue_name, export.id, export.status)
                pipe.set(job["key"], job["payload"], px=job["px"])
                pipe.zadd(job["queue"], {job["id"]: job["score"]})
            await pipe.execute()

    async def get(self, export_id: str) -> Export:
        raw = await self.redis.hgetall(keys.export(export_id))
        if not raw:
            raise NotFound(f"no export {export_id!r}")
        return Export.from_hash(raw)

    async def page(self, owner: str | None, page: int, per_page: int,
                   status: str | None = None, dataset_id: str | None = None) -> tuple[int, list[Export]]:
        """One page of exports, newest first (with a status: newest into it first); everyone's
        when owner is None, one dataset's when dataset_id is given."""
        indexes = [keys.EXPORTS_ALL if owner is None else keys.exports_of(owner)]
        if dataset_id is not None:
            indexes.append(keys.exports_for(dataset_id))
        if status is not None:
            indexes.append(keys.exports_in(status))
        start = (page - 1) * per_page
        if len(indexes) == 1:
            total, ids = await self._page_ids(indexes[0], start, per_page)
        elif indexes[0] == keys.EXPORTS_ALL and len(indexes) == 2:
            total, ids = await self._page_ids(indexes[1], start, per_page)
        else:
            # the ids in every index, ordered by the last one's score (creation, or entry into the status)
            weights = {index: 0 for index in indexes[:-1]} | {indexes[-1]: 1}
            ids = [export_id for export_id, _ in await self.redis.zinter(weights, withscores=True)]
            ids.reverse()
            total, ids = len(ids), ids[start:start + per_page]
        exports = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for export_id in ids:
                pipe.hgetall(keys.export(export_id))
            for raw in await pipe.execute():
                if raw:
                    exports.append(Export.from_hash(raw))
        return total, exports

    async def _page_ids(self, index: str, start: int, count: int) -> tuple[int, list[str]]:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zcard(index)
            pipe.zrevrange(index, start, start + count - 1)
            total, ids = await pipe.execute()
        return total, ids

    async def transition(
        self,
        export_id: str,
        target: str,
        *,
        expect: Iterable[str] | None = None,
        at_attempt: int | None = None,
        lease_lapsed: bool = False,
        also: Iterable[list[Any]] = (),
        **values: Any,
    ) -> bool:
        """Move the export to `target` if it is in one of `expect` (default: every state that
        may lead to target) and, when given, still at attempt `at_attempt` (and, with
        lease_lapsed, only if its lease is still lapsed); set `values` with it, and run the
        Redis commands `also` (domain/cas.py) only then. A change into an outcome of the
        metrics (ready, failed, expired, rejected) is counted with it. False when the export
        was elsewhere; NotFound when it is gone."""
        return await self._transition(export_id, target, expect=expect, at_attempt=at_attempt,
                                      lease_lapsed=lease_lapsed, also=also, **values) == APPLIED

    async def start(self, export_id: str, attempt: int) -> Export | None:
        """Attempt `attempt` takes the export, if it is queued for it (its previous attempt
        was attempt - 1): the export as it now is, processing, in the same round trip. None
        when it is not this attempt's; NotFound when it is gone."""
        started = await self._transition(export_id, PROCESSING, expect=(QUEUED,), at_attempt=attempt - 1,
                                         returning=True, attempt=attempt, records_done=0)
        return Export.from_hash(dict(zip(started[::2], started[1::2]))) if isinstance(started, list) else None

    async def _transition(self, export_id: str, target: str, *, expect: Iterable[str] | None, at_attempt: int | None,
                          lease_lapsed: bool = False, also: Iterable[list[Any]] = (), returning: bool = False,
                          **values: Any) -> int | list[Any]:
        allowed = sources(target)  # the state machine holds whatever the caller expects
        when = _conditions([s for s in (expect if expect is not None else allowed) if s in allowed], at_attempt)
        values.setdefault("modified", now())
        zadd: list[list[Any]] = []
        zrem: list[list[str]] = []
        expires_at = values.get("expires_at")
        if target == READY and isinstance(expires_at, datetime):
            zadd.append([keys.EXPORTS_READY, expires_at.timestamp(), export_id])
        if target == EXPIRED:
            zrem.append([keys.EXPORTS_READY, export_id])
        # out of the index of the state it leaves: one of those `when` allows (each Lua ZREM
        # cost Redis time on every transition of every export)
        zadd.append([keys.exports_in(target), time.time(), export_id])
        zrem += [[keys.exports_in(source), export_id] for source in when["status"] if source != target]
        if target == PROCESSING:
            zadd.append([keys.LEASES, self.lease_until(), export_id])
        elif PROCESSING in when["status"]:  # only a processing export holds a lease
            zrem.append([keys.LEASES, export_id])
        lapsed = [keys.LEASES, export_id, time.time()] if lease_lapsed else None
        count = [keys.METRICS, target, "export_type"] if target in metrics.OUTCOMES else None
        # the webhook's first attempt queued by the change itself: told exactly when it is made
        notify = webhooks.first_attempt(self.queue_name, export_id, target) if target in NOTIFIED else None
        return await self._apply(export_id, when, {"status": target, **values}, zadd, zrem, lapsed,
                                 publish=[keys.status_changes(export_id), export_id], also=also, count=count,
                                 returning=returning, enqueue=notify)

    async def update(self, export_id: str, *, expect: Iterable[str], at_attempt: int | None = None,
                     renew_lease: bool = False, **values: Any) -> bool:
        """Set fields (progress, say) only while the export is in one of `expect` (and at the
        attempt); renew_lease extends the running attempt's lease. Never recreates a deleted
        export: False when it is gone or elsewhere."""
        zadd = [[keys.LEASES, self.lease_until(), export_id]] if renew_lease else []
        try:
            return await self._apply(export_id, _conditions(expect, at_attempt), values, zadd, []) == APPLIED
        except NotFound:
            return False

    async def _apply(self, export_id: str, when: dict[str, list[str]], values: dict[str, Any],
                     zadd: list[list[Any]], zrem: list[list[str]], lapsed: list[Any] | None = None,
                     publish: list[str] | None = None, also: Iterable[list[Any]] = (),
                     count: list[str] | None = None, returning: bool = False,
                     enqueue: dict[str, Any] | None = None) -> int | list[Any]:
        """The compare-and-set's answer (domain/cas.py); NotFound when the export is gone."""
        result = await self._cas(keys.export(export_id), when, {k: encode(k, v) for k, v in values.items()},
                                 zadd=zadd, zrem=zrem, lapsed=lapsed, publish=publish, also=also, count=count,
                                 returning=returning, enqueue=enqueue)
        if result == MISSING:
            raise NotFound(f"no export {export_id!r}")
        return result

    async def require(self, export_id: str, target: str, **values: Any) -> None:
        """transition(), answering 409 with the current state when it is not allowed."""
        if not await self.transition(export_id, target, **values):
            current = await self.get(export_id)
            raise Conflict(f"export {export_id} is {current.status}; it cannot become {target}")

    async def record_notification(self, export_id: str, status: str, attempt: int, record: dict[str, Any]) -> bool:
        """Keep one webhook attempt on the export (a field of its own, so attempts at telling
        two changes never overwrite each other); False when the export is gone."""
        return await self.update(export_id, expect=STATUSES,
                                 **{f"{NOTIFICATION}{status}:{attempt}": orjson.dumps(record).decode()})

    async def delete(self, export: Export) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.export(export.id))
            pipe.zrem(keys.EXPORTS_ALL, export.id)
            pipe.zrem(keys.exports_of(export.owner), export.id)
            pipe.zrem(keys.exports_for(export.dataset_id), export.id)
            pipe.zrem(keys.EXPORTS_READY, export.id)
            pipe.zrem(keys.LEASES, export.id)
            for status in STATUSES:
                pipe.zrem(keys.exports_in(status), export.id)
            pipe.publish(keys.status_changes(export.id), export.id)
            await pipe.execute()

    async def prioritize(self, export_id: str, priority: int) -> bool:
        """Give an export still waiting to run a priority: workers take it before others (0:
        none). False when it no longer waits."""
        return bool(await self.redis.register_script(_PRIORITIZE)(
            keys=[keys.export(export_id)], args=[priority, *WAITING_TO_RUN]))

    async def due_for_expiry(self, moment: datetime, limit: int = 500) -> list[str]:
        return await self.redis.zrangebyscore(keys.EXPORTS_READY, "-inf", moment.timestamp(), start=0, num=limit)

    def lease_until(self) -> float:
        return time.time() + self.lease_seconds

    async def queued_before(self, moment: float, limit: int = 500) -> list[str]:
        """Exports queued since before `moment` (a Unix time) and still queued."""
        return await self.redis.zrangebyscore(keys.exports_in(QUEUED), "-inf", moment, start=0, num=limit)

    async def lapsed_leases(self, limit: int = 500) -> list[str]:
        """Processing exports whose worker stopped renewing its lease (killed, frozen, cut off)."""
        return await self.redis.zrangebyscore(keys.LEASES, "-inf", time.time(), start=0, num=limit)


EXPORTS_PREFIX = "exports"  # the storage prefix of every export's directory


def export_dir(export_id: str) -> str:
    """The storage prefix holding every file of an export."""
    return f"{EXPORTS_PREFIX}/{export_id}"


def attempt_dir(export_id: str, attempt: int) -> str:
    return f"{export_dir(export_id)}/{attempt}"


def file_key(export: Export) -> str:
    """Where a ready export's file lives: each attempt writes under its own directory, so a
    late attempt can never replace the file of the one that won; a shared file lives where
    the export that wrote it put it."""
    return export.file_key or f"{attempt_dir(export.id, export.attempt)}/{export.file_name}"


def _conditions(statuses: Iterable[str], at_attempt: int | None) -> dict[str, list[str]]:
    when = {"status": list(statuses)}
    if at_attempt is not None:
        when["attempt"] = [str(at_attempt)]
    return when


def expiry_from(moment: datetime, ttl_seconds: int) -> datetime:
    return moment + timedelta(seconds=ttl_seconds)
