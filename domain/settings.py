"""Configuration, read once from EXPORTD_* environment variables.

Secrets have no default: when EXPORTD_SECRET_KEY or EXPORTD_ADMIN_TOKEN is not set, the value
is generated once and kept in a file under the data directory (mode 0600), so every process
that shares the data directory shares it too. With files in a bucket (EXPORTD_STORAGE_URL), the
endpoint comes from AWS_ENDPOINT_URL; boto3 reads the region and credentials (AWS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, …) itself.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

PREFIX = "EXPORTD_"
S3_DOWNLOADS = ("redirect", "stream")


class SettingsError(ValueError):
    pass


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be an integer, not {raw!r}") from None


def _bounded(env: Mapping[str, str], name: str, default: int, low: int, high: int | None = None,
             meaning: str = "") -> int:
    """An integer setting from `low` to `high` (or up), else SettingsError; `meaning` glosses `low`."""
    value = _int(env, name, default)
    if value is None or value < low or (high is not None and value > high):
        bounds = f"from {low}{meaning} to {high}" if high is not None else f"{low} or more"
        raise SettingsError(f"{PREFIX}{name} must be {bounds}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses or networks (10.0.0.0/8), each checked."""
    import ipaddress

    found = tuple(part.strip() for part in (env.get(PREFIX + name) or "").split(",") if part.strip())
    for part in found:
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise SettingsError(f"{PREFIX}{name}: {part!r} is not an IP address or network") from None
    return found


def stored_secret(data_dir: Path, name: str) -> str:
    """The secret kept in data_dir/name, created (atomically, 0600) the first time it is asked for."""
    path = data_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    try:
        os.link(tmp, path)  # fails if another process won the race; theirs is kept
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    secret_key: str = field(repr=False)
    admin_token: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str = "redis://127.0.0.1:6379/0"
    export_ttl: int = 86400
    approval_rows: int | None = None
    origin_system: str = "exportd"
    queue_name: str = "exportd:queue"
    worker_jobs: int = 2
    worker_nice: int = 10  # added to a worker process's niceness: exports are batch work
    worker_alone_ms: int = 1000  # a job runs alone in its worker this long before another starts beside it
    job_timeout: int = 6 * 3600
    shutdown_grace: int = 30
    max_attempts: int = 5
    lease_seconds: int = 15
    max_export_bytes: int | None = None
    rate_limit: int = 60  # export creations per token per minute
    max_upload_bytes: int = 1 << 30  # management API file uploads; larger ones answer 413
    storage_url: str = ""  # s3://bucket/prefix: files in a bucket that hosts share; "": under data_dir
    s3_endpoint: str | None = None  # an S3-compatible server's URL (AWS_ENDPOINT_URL); None: AWS
    s3_downloads: str = "redirect"  # "redirect" to a presigned URL, or "stream" through the web process
    min_free_bytes: int = 1 << 30  # free space the data directory's file system keeps; below it /health is degraded (0: never)
    queue_read_limit: int = 100  # queued job ids a worker reads at a time: at least the jobs running on all workers together
    # the web process's query processes (api/isolation): how many, and each call's budgets
    query_processes: int = 3
    heavy_queries: int = 1  # group_by, aggregates, facets and sorts at a time, per web process
    query_seconds: int = 30
    query_memory_mb: int = 256  # a query process's growth over its idle size
    query_wait: int = 10  # seconds a call may wait for its turn before a 503
    explore_rate_limit: int = 600  # Explore API requests a minute per client (IP, or API key); 0: none
    stream_rate_limit: int = 30  # streamed exports a minute per client; 0: none
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks whose X-Forwarded-For is believed

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get(PREFIX + "DATA_DIR") or "var").resolve()
        export_ttl = _int(env, "EXPORT_TTL", 86400)
        if export_ttl is None or export_ttl <= 0:
            raise SettingsError(f"{PREFIX}EXPORT_TTL must be a positive number of seconds")
        storage_url = env.get(PREFIX + "STORAGE_URL") or ""
        if storage_url and not storage_url.startswith("s3://"):
            raise SettingsError(f"{PREFIX}STORAGE_URL must be s3://bucket/prefix, or unset for the data directory")
        s3_downloads = env.get(PREFIX + "S3_DOWNLOADS") or "redirect"
        if s3_downloads not in S3_DOWNLOADS:
            raise SettingsError(f"{PREFIX}S3_DOWNLOADS must be one of {', '.join(S3_DOWNLOADS)}, not {s3_downloads!r}")
        return cls(
            data_dir=data_dir,
            secret_key=env.get(PREFIX + "SECRET_KEY") or stored_secret(data_dir, "secret_key"),
            admin_token=env.get(PREFIX + "ADMIN_TOKEN") or stored_secret(data_dir, "admin_token"),
            host=env.get(PREFIX + "HOST") or "127.0.0.1",
            port=_int(env, "PORT", 8080) or 8080,
            redis_url=env.get(PREFIX + "REDIS_URL") or "redis://127.0.0.1:6379/0",
            export_ttl=export_ttl,
            approval_rows=_int(env, "APPROVAL_ROWS", None),
            origin_system=env.get(PREFIX + "ORIGIN_SYSTEM") or "exportd",
            queue_name=env.get(PREFIX + "QUEUE") or "exportd:queue",
            worker_jobs=_int(env, "WORKER_JOBS", 2) or 2,
            worker_nice=_bounded(env, "WORKER_NICE", 10, 0, 19, " (the priority it was started with)"),
            worker_alone_ms=_bounded(env, "WORKER_ALONE_MS", 1000, 0),
            job_timeout=_int(env, "JOB_TIMEOUT", 6 * 3600) or 6 * 3600,
            shutdown_grace=_int(env, "SHUTDOWN_GRACE", 30) or 0,
            max_attempts=_int(env, "MAX_ATTEMPTS", 5) or 5,
            lease_seconds=_int(env, "LEASE_SECONDS", 15) or 15,
            max_export_bytes=_int(env, "MAX_EXPORT_BYTES", None),
            rate_limit=_int(env, "RATE_LIMIT", 60) or 0,
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 1 << 30) or 1 << 30,
            storage_url=storage_url,
            s3_endpoint=env.get("AWS_ENDPOINT_URL") or None,
            s3_downloads=s3_downloads,
            min_free_bytes=_bounded(env, "MIN_FREE_BYTES", 1 << 30, 0),
            queue_read_limit=_int(env, "QUEUE_READ_LIMIT", 100) or 100,
            query_processes=_bounded(env, "QUERY_PROCESSES", 3, 2),
            heavy_queries=_bounded(env, "HEAVY_QUERIES", 1, 1),
            query_seconds=_bounded(env, "QUERY_SECONDS", 30, 1),
            query_memory_mb=_bounded(env, "QUERY_MEMORY_MB", 256, 32),
            query_wait=_bounded(env, "QUERY_WAIT", 10, 0),
            explore_rate_limit=_bounded(env, "EXPLORE_RATE_LIMIT", 600, 0),
            stream_rate_limit=_bounded(env, "STREAM_RATE_LIMIT", 30, 0),
            trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
        )
