"""Files: dataset versions, finished exports and the partial files of running exports, kept
under one data directory by key (a relative path such as `exports/<id>/<name>.csv`).

A file becomes visible only when whole: `writing()` hands out a partial file under
`.partial/`, and on success flushes, fsyncs and renames it into place; on any error it is
removed. A worker killed mid-write leaves only a partial, which `sweep_partials` removes.
"""
from __future__ import annotations

import io
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

PARTIAL_DIR = ".partial"
TAG_END = "~~"


class LocalStorage:
    def __init__(self, root: Path):
        self.root = root
        (root / PARTIAL_DIR).mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"storage key {key!r} leaves the data directory")
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    @contextmanager
    def writing(self, key: str, tag: str = "", max_bytes: int | None = None) -> Iterator[BinaryIO]:
        """A file to write `key` through; it appears under `key` only if the block succeeds.
        `tag` names the partial file's owner (an export and attempt) for `sweep_partials`;
        past `max_bytes` writing raises ExportTooLarge."""
        final = self.path(key)
        partial = self.root / PARTIAL_DIR / f"{tag}{TAG_END}{uuid.uuid4().hex}.part"
        try:
            with open(partial, "wb") as f:
                yield f if max_bytes is None else Bounded(f, max_bytes)
                f.flush()
                os.fsync(f.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, final)
            _fsync_dir(final.parent)
        finally:
            partial.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def partial_tags(self) -> set[str]:
        return {path.name.split(TAG_END, 1)[0] for path in (self.root / PARTIAL_DIR).iterdir()}

    def sweep_partials(self, older_than_seconds: float, live_tags: set[str] = frozenset(), tagged_only: bool = False) -> int:
        """Remove partial files untouched for that long whose tag is not live (left by
        killed workers); with tagged_only, leave untagged ones (dataset imports) alone."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in (self.root / PARTIAL_DIR).iterdir():
            tag = path.name.split(TAG_END, 1)[0]
            if tag in live_tags or (tagged_only and not tag):
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed


class ExportTooLarge(Exception):
    pass


class Bounded(io.RawIOBase):
    """A write-only file that refuses to grow past a size."""

    def __init__(self, inner: BinaryIO, limit: int):
        super().__init__()
        self.inner, self.limit, self.written = inner, limit, 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.written

    def write(self, data) -> int:  # type: ignore[override]
        size = len(data)
        if self.written + size > self.limit:
            raise ExportTooLarge(f"the export is larger than the {self.limit:,}-byte limit this service sets "
                                 "(EXPORTD_MAX_EXPORT_BYTES); ask for fewer records or fields")
        self.inner.write(data)
        self.written += size
        return size

    def flush(self) -> None:
        self.inner.flush()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
