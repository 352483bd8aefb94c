"""The default backend: files under the data directory, by key. A partial file is published
by a rename on the same file system (atomic), after which the directory is fsynced."""
from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from domain.storage.base import Stat, Storage, check_key, fsync_path


class LocalStorage(Storage):
    def __init__(self, root: Path):
        super().__init__(root)
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        """The file of `key`: under the root, as check_key allows no `..` and no absolute key
        (resolving every key's path cost a small export a millisecond and a half)."""
        return self.root / check_key(key)

    def _publish(self, partial: Path, key: str) -> None:
        final = self.path(key)
        for last_try in (False, True):
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(partial, final)
                break
            except FileNotFoundError:  # the sweep pruned the directory, empty, between the two
                if last_try or not partial.exists():
                    raise
        fsync_path(final.parent)

    def local_path(self, key: str) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no stored file {key!r}")
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def stat(self, key: str) -> Stat:
        st = self.path(key).stat()
        if not S_ISREG(st.st_mode):
            raise FileNotFoundError(f"no stored file {key!r}")
        # aiohttp's FileResponse made the same ETag, so validators clients hold stay valid.
        return Stat(st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}", datetime.fromtimestamp(st.st_mtime, timezone.utc))

    def open_range(self, key: str, start: int = 0, stop: int | None = None) -> BinaryIO:
        f = open(self.path(key), "rb")
        f.seek(start)
        return f

    def delete(self, key: str) -> None:
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def prune_empty_dirs(self, prefix: str, older_than_seconds: float) -> int:
        """Deepest first, so that a directory emptied of empty directories goes in the same
        pass (its own time changed only by their removal)."""
        cutoff = time.time() - older_than_seconds
        top = self.path(prefix)
        removed = 0
        pruned_parents: set[Path] = set()
        # os.walk passes over directories that vanish while it looks (another sweep's work)
        found = [Path(parent) / name for parent, names, _ in os.walk(top) for name in names]
        for path in sorted(found, key=lambda p: len(p.parts), reverse=True):
            try:
                if path.stat().st_mtime < cutoff or path in pruned_parents:
                    path.rmdir()  # only if empty: a file published meanwhile keeps it
                    removed += 1
                    pruned_parents.add(path.parent)
            except OSError:  # not empty, or gone
                pass
        return removed

    def keys(self, prefix: str) -> list[str]:
        top = self.path(prefix)
        return sorted(p.relative_to(self.root).as_posix() for p in top.rglob("*") if p.is_file())
