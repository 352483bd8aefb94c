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
from dataclasses import MISSING, dataclass, field, fields
from dataclasses import Field as Field_
from pathlib import Path
from typing import Any, Mapping

PREFIX = "EXPORTD_"
S3_DOWNLOADS = ("redirect", "stream")


class SettingsError(ValueError):
    pass


REQUIRED: Any = MISSING  # a setting a Settings must be given (from_env finds or makes it)


def setting(default: Any, doc: str, env: str | None = None, low: int | None = None, high: int | None = None,
            choices: tuple[str, ...] = (), networks: bool = False, repr: bool = True) -> Any:
    """A field of Settings with all that is known of it: its default, what it means, the
    environment variable it is read from (EXPORTD_ + its upper-cased name unless `env` says
    otherwise) and the bounds or choices its value must keep. The README's Configuration table
    is checked against these (tests/test_settings.py)."""
    return field(default=default, repr=repr, metadata={
        "doc": doc, "env": env, "low": low, "high": high, "choices": choices, "networks": networks})


def variable(item: Field_) -> str:
    """The environment variable a field of Settings is read from."""
    return item.metadata.get("env") or PREFIX + item.name.upper()


BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _read(item: Field_, raw: str) -> Any:
    """The value of `raw`, read from the environment, for the field `item`; SettingsError if it
    is no value of it."""
    name, meta = variable(item), item.metadata
    if meta["networks"]:
        return _networks(name, raw)
    if item.type == "tuple[str, ...]":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if meta["choices"] and raw not in meta["choices"]:
        raise SettingsError(f"{name} must be one of {', '.join(meta['choices'])}, not {raw!r}")
    if item.type == "bool":
        if raw.lower() not in BOOLEANS:
            raise SettingsError(f"{name} must be 1 or 0 (true or false), not {raw!r}")
        return BOOLEANS[raw.lower()]
    if item.type not in ("int", "int | None"):
        return raw
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from None
    low, high = meta["low"], meta["high"]
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise SettingsError(f"{name} must be {bounds}, not {value}")
    return value


def _networks(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses or networks (10.0.0.0/8), each checked."""
    import ipaddress

    found = tuple(part.strip() for part in raw.split(",") if part.strip())
    for part in found:
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not an IP address or network") from None
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
    """Every setting, each declared once (see `setting`); read from the environment by from_env."""

    data_dir: Path = setting(REQUIRED, "datasets, export files, secrets; with a bucket, local scratch (default ./var)")
    secret_key: str = setting(REQUIRED, "signs download links; generated into the data directory when unset", repr=False)
    admin_token: str = setting(REQUIRED, "the administrator's token; generated into the data directory when unset",
                               repr=False)
    host: str = setting("127.0.0.1", "the web process's address")
    port: int = setting(8080, "the web process's port", low=1, high=65535)
    redis_url: str = setting("redis://127.0.0.1:6379/0", "the Redis of the queue and every export's state")
    export_ttl: int = setting(86400, "seconds a ready export stays downloadable", low=1)
    approval_rows: int | None = setting(None, "exports of more records wait for an administrator", low=0)
    origin_system: str = setting("exportd", "the OSDI origin_system of every export")
    queue_name: str = setting("exportd:queue", "the arq queue's Redis key", env=PREFIX + "QUEUE")
    worker_jobs: int = setting(2, "exports one worker writes at a time", low=1)
    worker_nice: int = setting(10, "added to a worker process's niceness: exports are batch work", low=0, high=19)
    worker_alone_ms: int = setting(1000, "a job runs alone in its worker this long before another starts beside it", low=0)
    job_timeout: int = setting(6 * 3600, "seconds an export may run before it fails with a detail", low=1)
    shutdown_grace: int = setting(30, "seconds running exports get to finish on SIGTERM", low=0)
    max_attempts: int = setting(5, "lost attempts before an export fails", low=1)
    lease_seconds: int = setting(15, "a running export whose worker stops renewing its lease this long is run again", low=1)
    max_export_bytes: int | None = setting(None, "exports larger than this fail with a detail", low=1)
    rate_limit: int = setting(60, "export creations a minute per user (a visitor without an account: per IP); 0: none", low=0)
    exports_on_publish: tuple[str, ...] = setting((), "formats prepared when a dataset is published (comma-separated)")
    anonymous_exports: bool = setting(True, "visitors without a token may export public datasets (1 or 0)")
    max_upload_bytes: int = setting(1 << 30, "management API file uploads; larger ones answer 413", low=1)
    storage_url: str = setting("", "s3://bucket/prefix: files in a bucket that hosts share; unset: the data directory")
    s3_endpoint: str | None = setting(None, "an S3-compatible server's URL; unset: AWS", env="AWS_ENDPOINT_URL")
    s3_downloads: str = setting("redirect", "with a bucket: redirect to a presigned URL, or stream through the web process",
                                choices=S3_DOWNLOADS)
    min_free_bytes: int = setting(1 << 30, "free bytes the data directory's disk keeps, else /health is degraded; 0: never",
                                  low=0)
    owner_running: int = setting(0, "exports one owner runs at once, over every worker; 0: no cap", low=0)
    web_processes: int = setting(1, "web processes sharing EXPORTD_PORT (SO_REUSEPORT); in production, one per core", low=1)
    queue_read_limit: int = setting(100, "queued job ids a worker reads at a time: at least the jobs running everywhere", low=1)
    query_processes: int = setting(3, "query processes per web process (api/isolation)", low=2)
    heavy_queries: int = setting(1, "group_by, aggregates, facets and sorts at a time, per web process", low=1)
    query_seconds: int = setting(30, "seconds a query may run, streamed exports excepted", low=1)
    query_memory_mb: int = setting(256, "a query process's growth over its idle size for one call", low=32)
    query_wait: int = setting(10, "seconds a call may wait for its turn before a 503", low=0)
    explore_rate_limit: int = setting(600, "Explore API requests a minute per client (API key or IP); 0: none", low=0)
    stream_rate_limit: int = setting(30, "streamed exports a minute per client; 0: none", low=0)
    trusted_proxies: tuple[str, ...] = setting((), "addresses or networks whose X-Forwarded-For is believed", networks=True)
    webhook_allow_private: int = setting(0, "1: webhooks may go to private and loopback addresses (link-local never)",
                                         low=0, high=1)
    webhook_retry_seconds: int = setting(30, "wait before a failed webhook is sent again, doubled each time, for 24 h",
                                         low=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = env.get(variable(item))
            if raw is not None and raw != "":
                values[item.name] = _read(item, raw)
        data_dir = values["data_dir"] = Path(values.get("data_dir") or "var").resolve()
        storage_url = values.get("storage_url", "")
        if storage_url and not storage_url.startswith("s3://"):
            raise SettingsError(f"{PREFIX}STORAGE_URL must be s3://bucket/prefix, or unset for the data directory")
        for secret in ("secret_key", "admin_token"):
            values[secret] = values.get(secret) or stored_secret(data_dir, secret)
        return cls(**values)
