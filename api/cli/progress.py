"""Progress on stderr: a bar redrawn in place when stderr is a terminal (or --progress asks
for it), otherwise a plain line now and then, so logs of scripted runs stay readable. Each
line says done / total, the rate since the first update and the time left at that rate."""
from __future__ import annotations

import shutil
import sys
import time
from typing import Callable, TextIO

PLAIN_EVERY = 5.0  # seconds between plain lines
REDRAW_EVERY = 0.1  # seconds between redraws of a live bar
BAR = 40  # characters of a bar, fewer only on a terminal too narrow for it and its text
TEXT = 56  # characters kept for the sizes, rate and time left beside the bar


def count(n: float) -> str:
    return f"{n:,.0f}"


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """`update(done, total)` as often as wanted; `close()` ends the line. `unit` names what is
    counted ("records"), or is "bytes" for sizes."""

    def __init__(self, label: str, unit: str, live: bool, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.unit = unit
        self.live = live
        self.stream = stream or sys.stderr
        self.clock = clock
        self.start: tuple[float, int] | None = None  # (time, done) of the first update
        self.done = 0
        self.total: int | None = None
        self.shown_at = float("-inf")
        self.shown = ""
        self.drawn = False
        # chosen once, so the bar keeps its width as the figures beside it grow
        self.width = max(10, min(BAR, shutil.get_terminal_size().columns - len(label) - TEXT - 8))

    def update(self, done: int, total: int | None = None) -> None:
        moment = self.clock()
        if self.start is None:
            self.start = (moment, done)
        self.done, self.total = done, total if total is not None else self.total
        if moment - self.shown_at >= (REDRAW_EVERY if self.live else PLAIN_EVERY):
            self.shown_at = moment
            self._show(self.line(moment))

    def close(self) -> None:
        """Show the last figures (unless just shown) and end the line."""
        if self.start is not None and (line := self.line(self.clock())) != self.shown:
            self._show(line)
        if self.live and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = False

    def line(self, moment: float) -> str:
        fmt = size if self.unit == "bytes" else count
        unit = "" if self.unit == "bytes" else f" {self.unit}"
        parts = [f"{fmt(self.done)}/{fmt(self.total)}{unit}" if self.total is not None else f"{fmt(self.done)}{unit}"]
        rate = self._rate(moment)
        if rate:
            parts.append(f"{fmt(rate)}{unit}/s")
            if self.total is not None and self.total > self.done:
                parts.append(f"{duration((self.total - self.done) / rate)} left")
        text = ", ".join(parts)
        if not self.live:
            return f"{self.label}: {text}"
        if not self.total:
            return f"{self.label} {text}"
        fraction = min(1.0, self.done / self.total)
        filled = int(fraction * self.width)
        return f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%} {text}"

    def _rate(self, moment: float) -> float | None:
        if self.start is None:
            return None
        elapsed = moment - self.start[0]
        return (self.done - self.start[1]) / elapsed if elapsed > 0 and self.done > self.start[1] else None

    def _show(self, line: str) -> None:
        self.shown = line
        if self.live:
            self.stream.write(f"\r\x1b[K{line}")
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
