"""BENCHMARKS.md: each benchmark script replaces its own section, with the date and machine."""
from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEAD = "# exportd benchmarks\n\nWritten by `make bench` (bench/run.py: formats; bench/service.py: the running service).\n"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} x {cpu}, Python {platform.python_version()}"


def write_section(name: str, title: str, body: str) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = f"<!-- {name} -->\n## {title}\n\n{stamp}, {machine()}\n\n{body.rstrip()}\n<!-- /{name} -->"
    text = REPORT.read_text() if REPORT.exists() else HEAD
    pattern = re.compile(rf"<!-- {name} -->.*?<!-- /{name} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    REPORT.write_text(text)
