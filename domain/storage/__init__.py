"""Files by key — dataset versions, uploads, export files — behind one interface
(domain.storage.base.Storage) with two backends: the local data directory (the default) and
an S3-compatible bucket, which hosts share. `open_storage(settings)` gives the configured one."""
from __future__ import annotations

from domain.settings import Settings
from domain.storage.base import Bounded, Digest, ExportTooLarge, Stat, Storage, disk_full
from domain.storage.local import LocalStorage

__all__ = ["Bounded", "Digest", "ExportTooLarge", "LocalStorage", "Stat", "Storage", "cache_grace", "disk_full", "open_storage"]


def open_storage(settings: Settings) -> Storage:
    if settings.storage_url:
        from domain.storage.s3 import S3Storage  # boto3 is imported only where a bucket is used

        return S3Storage(settings.storage_url, settings.data_dir, settings.s3_endpoint)
    return LocalStorage(settings.data_dir)


def cache_grace(settings: Settings) -> int:
    """Seconds a host keeps a cached copy of a bucket file nobody reads: longer than the
    longest export, which may still be reading it."""
    return settings.job_timeout + 3600
