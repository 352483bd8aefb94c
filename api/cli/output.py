"""Where the command line writes: results on stdout (human text, or with --json the JSON
resources for scripts), notes and progress on stderr so they never mix with results."""
from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence

from api.cli.progress import Progress


class Output:
    def __init__(self, as_json: bool, progress: bool):
        self.as_json = as_json
        self.live = progress or sys.stderr.isatty()

    def result(self, value: Any, human: str) -> None:
        """The command's result: `value` as JSON with --json, else the `human` text."""
        text = json.dumps(value, indent=2, ensure_ascii=False) if self.as_json else human
        if text:
            print(text, flush=True)

    def note(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def progress(self, label: str, unit: str) -> Progress:
        return Progress(label, unit, live=self.live)


def table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    """Rows as left-aligned columns under a header."""
    cells = [list(map(str, header))] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)
