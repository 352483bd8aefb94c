"""Management processing jobs (publish, unpublish, abort_processing, save_version,
recover_realtime_records, scratch_recovery_data) and the processing status of a dataset.

A job is a Redis hash, pollable at /api/management/v2/jobs/{job_id} (40 hex characters, as the
platform's): queued → processing → done | failed | aborted. A dataset's status follows the
platform's: idle, queued, processing, error, aborting_processing, saving_version; it names the
job that holds it. One job holds a dataset at a time: starting another while one is queued or
running answers 409.

Every change is a compare-and-set on one hash in one Lua script (as domain.exports does), so a
late or duplicated worker never overwrites a newer state.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from domain import keys
from domain.cas import APPLIED, CompareAndSet
from domain.errors import Conflict, NotFound
from domain.timeutil import iso, now

# Job statuses
QUEUED, PROCESSING, DONE, FAILED, ABORTED = "queued", "processing", "done", "failed", "aborted"
JOB_STATUSES = (QUEUED, PROCESSING, DONE, FAILED, ABORTED)
FINISHED = (DONE, FAILED, ABORTED)

# Job kinds: the management API's processing endpoints
PUBLISH, UNPUBLISH, ABORT = "publish", "unpublish", "abort_processing"
SAVE_VERSION, RECOVER, SCRATCH = "save_version", "recover_realtime_records", "scratch_recovery_data"
KINDS = (PUBLISH, UNPUBLISH, ABORT, SAVE_VERSION, RECOVER, SCRATCH)

# Dataset statuses (OpenDataSoft's)
IDLE, ERROR, ABORTING, SAVING = "idle", "error", "aborting_processing", "saving_version"
DATASET_STATUSES = (IDLE, QUEUED, PROCESSING, ERROR, ABORTING, SAVING)
BUSY = (QUEUED, PROCESSING, ABORTING, SAVING)
FREE = ("", IDLE, ERROR)  # "": no status recorded yet (idle)

MAX_ERRORS = 1000  # rejected rows listed in a job; all are counted

DATASET_JOB = "dataset_job"  # the arq function running every kind (worker/dataset_jobs.py)


async def enqueue(pool: Any, queue_name: str, job_id: str) -> None:
    """Queue a management job on arq's queue; queuing it twice runs it once."""
    await pool.enqueue_job(DATASET_JOB, job_id, _job_id=keys.mjob_arq_id(job_id), _queue_name=queue_name)


def new_job_id() -> str:
    return secrets.token_hex(20)


@dataclass
class Job:
    job_id: str
    kind: str
    dataset_uid: str
    status: str = QUEUED
    created: str = ""
    started: str = ""
    finished: str = ""
    progress: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    abort_requested: bool = False

    JSON_FIELDS = ("progress", "errors", "result", "params")

    def to_hash(self) -> dict[str, str]:
        out = {}
        for name, value in vars(self).items():
            if name in self.JSON_FIELDS:
                out[name] = orjson.dumps(value).decode()
            elif isinstance(value, bool):
                out[name] = "1" if value else ""
            else:
                out[name] = str(value)
        return out

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> "Job":
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name not in raw:
                continue
            text = raw[name]
            if name in cls.JSON_FIELDS:
                values[name] = orjson.loads(text) if text else {}
            elif name == "abort_requested":
                values[name] = bool(text)
            else:
                values[name] = text
        return cls(**values)

    def view(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "job_id": self.job_id, "type": self.kind, "dataset_uid": self.dataset_uid, "status": self.status,
            "created": self.created, "started": self.started or None, "finished": self.finished or None,
            "progress": self.progress, "errors": self.errors,
        }
        if self.result:
            body["result"] = self.result
        if self.abort_requested and self.status not in FINISHED:
            body["abort_requested"] = True
        return body


def _encode(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)


class JobRepo:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._cas = CompareAndSet(redis)

    async def _set_if(self, key: str, when: dict[str, list[str]], **values: Any) -> bool:
        return await self._cas(key, when, {k: _encode(v) for k, v in values.items()}, may_create=True) == APPLIED

    # -- jobs ------------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        raw = await self.redis.hgetall(keys.mjob(job_id))
        if not raw:
            raise NotFound(f"no job {job_id!r}")
        return Job.from_hash(raw)

    async def create(self, kind: str, dataset_uid: str, holds_dataset: bool = True, **params: Any) -> Job:
        """A new queued job. One that holds the dataset (every kind but abort_processing)
        takes the dataset's status from idle or error to queued, or answers 409."""
        job = Job(new_job_id(), kind, dataset_uid, created=iso(now()) or "", params=params)
        if holds_dataset:
            taken = await self._set_if(keys.dataset_status(dataset_uid), {"status": list(FREE)},
                                       status=QUEUED, job_id=job.job_id, since=job.created, message="")
            if not taken:
                status = await self.dataset_status(dataset_uid)
                raise Conflict(f"the dataset is {status['status']} (job {status.get('job_id')}); "
                               "wait for it to finish or abort it with abort_processing", error_code="dataset_busy")
        await self.redis.hset(keys.mjob(job.job_id), mapping=job.to_hash())
        await self.redis.expire(keys.mjob(job.job_id), 30 * 86400)
        return job

    async def start(self, job: Job) -> bool:
        """queued → processing (or again processing: arq delivered the job again after its
        worker died). The dataset follows: processing, or saving_version."""
        moment = iso(now())
        if not await self._set_if(keys.mjob(job.job_id), {"status": [QUEUED, PROCESSING]}, status=PROCESSING, started=moment):
            return False
        if job.kind != ABORT:
            await self._set_if(keys.dataset_status(job.dataset_uid), {"job_id": [job.job_id], "status": [QUEUED, PROCESSING, SAVING]},
                               status=SAVING if job.kind == SAVE_VERSION else PROCESSING, since=moment)
        return True

    async def progress(self, job_id: str, progress: dict[str, Any]) -> bool:
        """Record progress; False when the job was asked to stop (or is no longer running)."""
        applied = await self._set_if(keys.mjob(job_id), {"status": [PROCESSING], "abort_requested": [""]}, progress=progress)
        return applied

    async def finish(self, job: Job, status: str, message: str = "", **values: Any) -> bool:
        """processing → done, failed or aborted; the dataset goes back to idle (error on failure)."""
        moment = iso(now())
        applied = await self._set_if(keys.mjob(job.job_id), {"status": [PROCESSING, QUEUED]}, status=status, finished=moment, **values)
        if job.kind != ABORT:
            await self._set_if(keys.dataset_status(job.dataset_uid), {"job_id": [job.job_id]},
                               status=ERROR if status == FAILED else IDLE, since=moment, message=message)
        return applied

    async def request_abort(self, dataset_uid: str) -> str:
        """Ask the job holding the dataset to stop; answers its id, or 409 when none runs."""
        status = await self.dataset_status(dataset_uid)
        target = status.get("job_id", "")
        if status["status"] not in (QUEUED, PROCESSING, SAVING) or not target:
            raise Conflict(f"the dataset is {status['status']}: there is no processing to abort", error_code="nothing_to_abort")
        await self._set_if(keys.mjob(target), {"status": [QUEUED, PROCESSING]}, abort_requested=True)
        await self._set_if(keys.dataset_status(dataset_uid), {"job_id": [target], "status": [QUEUED, PROCESSING, SAVING]},
                           status=ABORTING, since=iso(now()))
        return target

    # -- dataset status ----------------------------------------------------------------------

    async def dataset_status(self, dataset_uid: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.dataset_status(dataset_uid))
        return {"status": raw.get("status") or IDLE, "job_id": raw.get("job_id", ""), "since": raw.get("since", ""),
                "message": raw.get("message", "")}

    async def ensure_free(self, dataset_uid: str, doing: str) -> None:
        status = await self.dataset_status(dataset_uid)
        if status["status"] in BUSY:
            raise Conflict(f"cannot {doing} while the dataset is {status['status']} (job {status['job_id']})",
                           error_code="dataset_busy")
