"""Looking at processes through /proc, for the tests and benchmarks that count what a process
tree holds or leaves behind."""
from __future__ import annotations

import os
from pathlib import Path


def descendants(pid: int, depth: int | None = None) -> list[int]:
    """Every process descended from `pid` (not `pid` itself); with `depth`, only those that many
    generations down (1: its children)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    todo = [(child, 1) for child in children.get(pid, [])]
    while todo:
        current, generation = todo.pop()
        if depth is None or generation == depth:
            found.append(current)
        todo.extend((child, generation + 1) for child in children.get(current, []))
    return found


def rss(*pids: int) -> int:
    """Resident bytes of `pids` together; a process gone counts nothing."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
