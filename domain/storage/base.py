"""What every storage backend shares: keys, the one way to write a file (`writing`), the
partial files it spools to, and the size limit on exports.

A key is a relative path such as `exports/<id>/<attempt>/<name>.csv`. A file becomes visible
under its key only when whole: `writing()` hands out a partial file under the host's data
directory (`.partial/`, named by a tag saying whose it is), and on success flushes, fsyncs and
publishes it (the backend's `_publish`: a rename, or a completed multipart upload); on any
error nothing is published and the partial is removed. A writer that finishes a file of its
own elsewhere (FlatGeobuf, whose features go in after its index) may hand that file over whole
instead (`adopt`: a rename, not a copy). A worker
killed mid-write leaves only a partial (and whatever its writer made beside it, named after
it), which `sweep_partials` removes.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os
import shutil
import time
import uuid
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import AsyncIterator, BinaryIO, Iterator

PARTIAL_DIR = ".partial"
TAG_END = "~~"


@dataclass(frozen=True)
class Stat:
    """What a download needs to know of a stored file: its size and validators. A file never
    changes under its key, so the ETag (without its quotes) and the time are strong validators."""
    size: int
    etag: str
    modified: datetime


class Storage:
    """The interface; `_publish`, `local_path`, `exists`, `size`, `stat`, `open_range`,
    `delete` and `keys` are the backend's. Blocking: call it from a thread (or a command), not an event loop."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.partials = data_dir / PARTIAL_DIR
        self.partials.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def writing(self, key: str, tag: str = "", max_bytes: int | None = None,
                digest: Digest | None = None) -> Iterator[BinaryIO]:
        """A file to write `key` through; it appears under `key` only if the block succeeds.
        `tag` names the partial file's owner (an export and attempt) for `sweep_partials`;
        past `max_bytes` writing raises ExportTooLarge. With `digest`, its `sha256` holds the
        published file's once the block is done (taken as the bytes pass when it is
        `streamed`: the file handed out is then a Hashing)."""
        with self._spooled(key, tag) as (f, partial):
            bounded = None if max_bytes is None else Bounded(f, max_bytes)
            hashing = Hashing(bounded or f) if digest is not None and digest.streamed else None
            try:
                yield hashing or bounded or f  # type: ignore[misc]
            except Exception:
                if bounded is not None and bounded.refused is not None:  # whatever wrapped it (polars' own error)
                    raise bounded.refused from None
                raise
            _durable(f, partial)
            if digest is not None:
                digest.sha256 = hashing.finish(partial) if hashing is not None else file_sha256(partial)
            self._publish(partial, key)

    @asynccontextmanager
    async def writing_async(self, key: str, tag: str = "") -> AsyncIterator[BinaryIO]:
        """`writing` for a coroutine that writes small chunks as they arrive (an upload): the
        publishing (a rename, or an upload to the bucket) runs in a thread."""
        with self._spooled(key, tag) as (f, partial):
            yield f
            _durable(f, partial)
            await asyncio.to_thread(self._publish, partial, key)

    @contextmanager
    def _spooled(self, key: str, tag: str) -> Iterator[tuple[BinaryIO, Path]]:
        """A new partial file, open for writing; removed (if still there) whatever happens."""
        check_key(key)
        partial = self.partials / f"{tag}{TAG_END}{uuid.uuid4().hex}.part"
        try:
            with open(partial, "wb") as f:
                _OPEN_PARTIALS[id(f)] = partial
                try:
                    yield f, partial
                finally:
                    del _OPEN_PARTIALS[id(f)]
        finally:
            partial.unlink(missing_ok=True)

    def _publish(self, partial: Path, key: str) -> None:
        raise NotImplementedError

    def local_path(self, key: str) -> Path:
        """A local file holding `key`, to read (Parquet scans, resources); FileNotFoundError
        when there is none."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def size(self, key: str) -> int:
        raise NotImplementedError

    def stat(self, key: str) -> Stat:
        """FileNotFoundError when there is no file `key`."""
        raise NotImplementedError

    def open_range(self, key: str, start: int = 0, stop: int | None = None) -> BinaryIO:
        """A stream of the file's bytes from `start` (to read and close); the caller reads no
        further than `stop`, which a backend may also enforce."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove the file `key`, or every file under the prefix `key/`."""
        raise NotImplementedError

    def keys(self, prefix: str) -> list[str]:
        """The keys of the files under `prefix/`, sorted."""
        raise NotImplementedError

    def abort_stale_uploads(self, older_than_seconds: float) -> int:
        """Incomplete uploads started that long ago (their worker died mid-upload) are given up."""
        return 0

    def evict_cache(self, older_than_seconds: float) -> int:
        """Local copies of remote files unread for that long are removed."""
        return 0

    def prune_empty_dirs(self, prefix: str, older_than_seconds: float) -> int:
        """Remove the directories under `prefix/` that hold no file and were last changed
        that long ago (left by deletions and expiries); a bucket has no directories."""
        return 0

    def close(self) -> None:
        """Let go of connections."""

    def partial_tags(self) -> set[str]:
        return {path.name.split(TAG_END, 1)[0] for path in self.partials.iterdir()}

    def sweep_partials(self, older_than_seconds: float, dead_tags: set[str]) -> int:
        """Remove the partial files of `dead_tags` untouched for that long (left by killed
        workers and dead imports: the untagged ""), and the directories of temporary files
        their writers made beside them (named after them: formats/geo.py). The caller judges
        the tags it listed with `partial_tags`: a partial begun since is of none of them, so
        a writer that started meanwhile never loses its file."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self.partials.iterdir():
            if path.name.split(TAG_END, 1)[0] not in dead_tags:
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed


# The partial files `_spooled` has open, by the id of their file object (alive while listed):
# what `adopt` may rename a finished file onto. They stay plain files rather than a subclass
# knowing its path: polars writes to an exact io.BufferedWriter's descriptor itself, but calls
# a subclass's methods chunk by chunk.
_OPEN_PARTIALS: dict[int, Path] = {}


def adopt(out: BinaryIO, path: Path) -> bool:
    """Make the finished file at `path` the whole content of `out`, by renaming it onto the
    partial file, when `out` is one `writing` handed out (bounded or not) and nothing has been
    written to it yet: a writer that finishes a file of its own (FlatGeobuf) saves copying
    it, and `writing` fsyncs the adopted file instead. Past the size limit it raises
    ExportTooLarge, as the copy would. False, with nothing done, in any other case (`out`
    wrapped by something else, such as gzip, or already written to; `path` on another file
    system): the caller copies. `out` is closed once adopted, so that a stray write fails
    rather than goes to a file nobody publishes."""
    if isinstance(out, Hashing):  # the adopted bytes pass no write(): the digest reads the file
        out.whole = False
        out = out.inner
    bounded = out if isinstance(out, Bounded) else None
    f = bounded.inner if bounded is not None else out
    partial = _OPEN_PARTIALS.get(id(f))
    if partial is None or f.closed or f.tell():
        return False
    size = os.stat(path).st_size
    if bounded is not None:
        bounded.admit(size)
    try:
        os.replace(path, partial)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            return False
        raise
    f.close()
    if bounded is not None:
        bounded.written = size
    return True


def _durable(f: BinaryIO, partial: Path) -> None:
    """fsync the bytes under the partial's name: through `f`, or by name once `f` is closed
    (an adopted file took the name, and `f` no longer names it)."""
    if f.closed:
        fsync_path(partial)
    else:
        f.flush()
        os.fsync(f.fileno())


def fsync_path(path: Path) -> None:
    """fsync the file or directory at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_key(key: str) -> str:
    """A key is a relative path that stays where it is put: no `..`, no absolute path."""
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or "\\" in key or ".." in parts or PARTIAL_DIR in parts:
        raise ValueError(f"storage key {key!r} leaves the data directory")
    return key


class ExportTooLarge(Exception):
    pass


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_MESSAGES = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


def disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from, is a full disk (or a quota reached):
    an OSError, or a library's own error quoting one (pyarrow's, polars')."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return True
        if any(message in str(exc) for message in DISK_FULL_MESSAGES):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class Bounded(io.RawIOBase):
    """A write-only file that refuses to grow past a size."""

    def __init__(self, inner: BinaryIO, limit: int):
        super().__init__()
        self.inner, self.limit, self.written = inner, limit, 0
        self.refused: ExportTooLarge | None = None

    def writable(self) -> bool:
        return True

    @property
    def name(self) -> str:
        """The file's name, as the file it wraps has one (formats/geo.py puts its temporary
        files beside it)."""
        return self.inner.name

    def tell(self) -> int:
        return self.written

    def admit(self, size: int) -> None:
        """Refuse (ExportTooLarge, kept in `refused`) `size` more bytes past the limit."""
        if self.written + size > self.limit:
            self.refused = ExportTooLarge(f"the export is larger than the {self.limit:,}-byte limit this service sets "
                                          "(EXPORTD_MAX_EXPORT_BYTES); ask for fewer records or fields")
            raise self.refused

    def write(self, data) -> int:  # type: ignore[override]
        size = len(data)
        self.admit(size)
        self.inner.write(data)
        self.written += size
        return size

    def flush(self) -> None:
        self.inner.flush()


@dataclass
class Digest:
    """Asks `writing` for the SHA-256 of the file it publishes. `streamed`: taken from the bytes
    as they are written (a Hashing), else read back from the finished file, which is the
    cheaper for a writer that would write to an exact file's descriptor itself (polars: a
    wrapper makes it hand over its output chunk by chunk)."""
    streamed: bool = True
    sha256: str = ""


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Hashing(io.RawIOBase):
    """A write-only file that takes the SHA-256 of what goes through it, so that a finished
    export's digest costs no second reading. Bytes that pass it by (a writer that seeks back to
    rewrite a header, as zipfile does, or writes to the descriptor, or a file adopted whole)
    make `finish` read the file once instead."""

    def __init__(self, inner: BinaryIO):
        super().__init__()
        self.inner, self.count, self.at, self.whole = inner, 0, 0, True
        self._hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.inner.seekable()

    @property
    def name(self) -> str:
        return self.inner.name

    def fileno(self) -> int:
        self.whole = False
        return self.inner.fileno()

    def tell(self) -> int:
        return self.at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.at = self.inner.seek(offset, whence)
        return self.at

    def write(self, data) -> int:  # type: ignore[override]
        if self.at != self.count:  # over bytes already hashed
            self.whole = False
        size = self.inner.write(data)
        size = len(data) if size is None else size
        if self.whole:
            self._hash.update(memoryview(data).cast("B")[:size])
        self.at += size
        self.count = max(self.count, self.at)
        return size

    def flush(self) -> None:
        if not self.inner.closed:
            self.inner.flush()

    def finish(self, path: Path) -> str:
        """The digest of the file at `path`, which these writes made: theirs when they were all
        of it, else read from the file."""
        if self.whole and self.count == os.path.getsize(path):
            return self._hash.hexdigest()
        return file_sha256(path)
