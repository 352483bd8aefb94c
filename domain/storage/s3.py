"""An S3-compatible bucket (AWS S3, MinIO, Ceph, Garage…): the storage that workers and web
processes on several hosts share. `EXPORTD_STORAGE_URL=s3://bucket/prefix`; the endpoint,
region and credentials come from the usual AWS environment variables, which boto3 reads.

Writing spools to the host's partial file as every backend does (format writers that seek
still can, and the partial sweep still cleans after killed workers), then publishes it with a
multipart upload of 8 MiB parts, completed only once every part is in: until then the object
does not exist, and any error aborts the upload. A worker killed mid-upload leaves an
incomplete upload, which `abort_stale_uploads` gives up.

Reading (Parquet scans of dataset versions, uploaded resources) goes through a read-through
cache under the host's data directory (`cache/<key>`): every stored file is immutable once
written (a new dataset version, export attempt or upload gets a new key), so a cached copy
never goes stale, and pyarrow gets a local file with cheap random access for its footer and
column-chunk reads instead of a ranged GET for each. Files are fetched whole, streamed to
disk, so memory stays flat; `evict_cache` removes copies unread for a while.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from domain.storage.base import Stat, Storage, check_key

PART_SIZE = 8 << 20  # bytes per uploaded part (S3 asks for at least 5 MiB but the last)
COPY_CHUNK = 1 << 20
CACHE_DIR = "cache"
MISSING = ("404", "NoSuchKey", "NotFound")
_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    """One boto3 session a process: making a client from a new session loads the service
    models again (about a second); from the same session it takes milliseconds."""
    return boto3.session.Session()


class S3Storage(Storage):
    def __init__(self, url: str, data_dir: Path, endpoint_url: str | None = None):
        """`url` is s3://bucket/prefix; with an `endpoint_url` (an S3-compatible server rather
        than AWS) objects are addressed by path, as such servers expect."""
        super().__init__(data_dir)
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"an S3 storage url is s3://bucket/prefix, not {url!r}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.cache = data_dir / CACHE_DIR
        config = Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 5},
                        s3={"addressing_style": "path" if endpoint_url else "auto"})
        with _SESSION_LOCK:  # a session is not thread-safe; the clients it makes are
            self.client = _session().client("s3", endpoint_url=endpoint_url, config=config)

    def name(self, key: str) -> str:
        """The object's name in the bucket."""
        return f"{self.prefix}/{check_key(key)}" if self.prefix else check_key(key)

    def _publish(self, partial: Path, key: str) -> None:
        name = self.name(key)
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=name)["UploadId"]
        try:
            parts = []
            with open(partial, "rb") as f:
                while True:
                    chunk = f.read(PART_SIZE)
                    if not chunk and parts:
                        break
                    number = len(parts) + 1
                    answer = self.client.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                                     PartNumber=number, Body=chunk)
                    parts.append({"ETag": answer["ETag"], "PartNumber": number})
                    if len(chunk) < PART_SIZE:
                        break
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise

    def local_path(self, key: str) -> Path:
        path = self.cache / check_key(key)
        if path.is_file():
            os.utime(path)  # read now: evict_cache keeps it a while longer
            return path
        with self._spooled(key, "") as (f, partial):
            with self.open_range(key) as body:
                shutil.copyfileobj(body, f, COPY_CHUNK)
            f.flush()
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, path)
        return path

    def open_range(self, key: str, start: int = 0, stop: int | None = None) -> BinaryIO:
        """The object's bytes [start, stop) as a stream to read and close."""
        extra = {} if start == 0 and stop is None else {"Range": f"bytes={start}-{'' if stop is None else stop - 1}"}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.name(key), **extra)["Body"]
        except ClientError as exc:
            raise _not_found(exc, key) from None

    def presigned_url(self, key: str, seconds: int, file_name_header: str, media_type: str) -> str:
        """A URL any client may GET the object from for `seconds`, with these response headers."""
        return self.client.generate_presigned_url("get_object", ExpiresIn=seconds, Params={
            "Bucket": self.bucket, "Key": self.name(key),
            "ResponseContentDisposition": file_name_header, "ResponseContentType": media_type})

    def size(self, key: str) -> int:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.name(key))["ContentLength"]
        except ClientError as exc:
            raise _not_found(exc, key) from None

    def stat(self, key: str) -> Stat:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.name(key))
        except ClientError as exc:
            raise _not_found(exc, key) from None
        return Stat(head["ContentLength"], head["ETag"].strip('"'), head["LastModified"].astimezone(timezone.utc))

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        names = [self.name(key), *(self.name(k) for k in self.keys(key))]
        for i in range(0, len(names), 1000):  # DeleteObjects takes at most 1000 keys
            self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": n} for n in names[i:i + 1000]], "Quiet": True})
        cached = self.cache / check_key(key)
        if cached.is_dir():
            shutil.rmtree(cached, ignore_errors=True)
        else:
            cached.unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.name(prefix) + "/"):
            found.extend(item["Key"][strip:] for item in page.get("Contents", ()))
        return sorted(found)

    def abort_stale_uploads(self, older_than_seconds: float) -> int:
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than_seconds)
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "")
        for page in pages:
            for upload in page.get("Uploads", ()):
                if upload["Initiated"] <= cutoff:
                    with contextlib.suppress(ClientError):  # finished or aborted meanwhile
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                        aborted += 1
        return aborted

    def evict_cache(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self.cache.rglob("*") if self.cache.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def close(self) -> None:
        self.client.close()


def _not_found(exc: ClientError, key: str) -> Exception:
    if exc.response.get("Error", {}).get("Code") in MISSING:
        return FileNotFoundError(f"no stored file {key!r}")
    return exc
