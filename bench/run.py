"""`python -m bench.run` (`make bench`): every export format, ours beside a native baseline.

For each format, in this one run and one after the other, each in a fresh process
(bench/one.py) so peak RSS is per run: our export path (the worker's scan and
worker.writing.write_export) and the baselines of bench/baselines.py. One line per format:
records per second for ours and for the best baseline, their ratio, our MB/s (output bytes /
seconds), our peak RSS and output size. Then every baseline in detail, and how flat our
memory is from N/10 to N rows.

Datasets (bench/dataset.py, cached in bench/out/): N points (--rows), N/10 points for the
slow formats (--slow-rows) and for the memory figure, N/10 polygons for the polygon cases
(`geojson/poly`, …). Nothing here asserts a time: it prints.

The machine may be shared: `--repeat N` measures each side N times, ours and the baselines
in turn, and keeps each side's fastest run (and largest peak RSS). `--quick` (100,000 rows,
`make bench QUICK=1`) must take well under a minute: a fresh interpreter costs 1-2 s of
imports, more than most of its measurements, so each one is forked from a server process that
imported pyarrow, polars and exportd's modules once (peak RSS then counts those modules, as a
fresh process that imported them would), and the slow baselines run on a smaller sample.
Only a run of every format replaces the formats section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import baselines
from bench.dataset import OUT, load
from bench.one import OUR_MODULES, run_logged
from bench.report import write_section
from formats import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
FAST = ("csv", "json", "jsonl", "parquet", "ov2", "geojson")  # run at --rows; the others at --slow-rows
POLYGON_FORMATS = ("geojson", "shp", "fgb", "kml", "gpkg", "fgdb")  # also run on the polygon dataset
FLAT_FORMATS = ("csv", "json")  # peak RSS compared at N/10 and N rows


@dataclass(frozen=True)
class Case:
    format: str
    dataset: str  # points or polygons
    rows: int

    @property
    def label(self) -> str:
        return self.format if self.dataset == "points" else f"{self.format}/poly"


@dataclass
class Measure:
    rows: int = 0
    seconds: float = 0.0
    bytes: int = 0
    rss_kib: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.seconds > 0

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds if self.ok else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.ok else 0.0


class Runner:
    """Runs bench/one.py for one side of a case in a process of its own: a fresh interpreter,
    or with `quick` a process forked from a server that imported the modules once."""

    def __init__(self, timeout: float, quick: bool):
        self.timeout, self.quick = timeout, quick
        self.forks = multiprocessing.get_context("forkserver") if quick else None
        if self.forks:
            self.forks.set_forkserver_preload(["bench.one", *OUR_MODULES])

    def measure(self, case: Case, side: str) -> Measure:
        logs = OUT / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{case.label.replace('/', '-')}-{case.rows}-{side.split()[0]}.log"
        log.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="exportd-bench-") as tmp:
            result = Path(tmp) / "result.json"
            argv = ["--format", case.format, "--dataset", case.dataset, "--rows", str(case.rows), "--side", side,
                    "--result", str(result), *(["--quick"] if self.quick else [])]
            code = self._run(argv, log)
            if code is None:
                return Measure(error=f"timed out after {self.timeout:.0f} s")
            if not result.exists():
                return Measure(error=f"exit {code}; see {log.relative_to(ROOT)}")
            data = json.loads(result.read_text())
        return Measure(rows=data.get("rows", 0), seconds=data.get("seconds", 0.0), bytes=data.get("bytes", 0),
                       rss_kib=data.get("rss_kib", 0), error=data.get("error", ""))

    def _run(self, argv: list[str], log: Path) -> int | None:
        """The exit code, None on timeout."""
        if self.forks is None:
            with open(log, "wb") as err:
                try:
                    return subprocess.run([sys.executable, "-m", "bench.one", *argv], cwd=ROOT, stdout=err, stderr=err,
                                          timeout=self.timeout).returncode
                except subprocess.TimeoutExpired:
                    return None
        process = self.forks.Process(target=run_logged, args=(argv, log))
        process.start()
        process.join(self.timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            return None
        return process.exitcode


def fastest(measures: list[Measure]) -> Measure:
    """The fastest successful run, with the largest peak RSS of them all; else the last one."""
    ok = [m for m in measures if m.ok]
    if not ok:
        return measures[-1]
    best = min(ok, key=lambda m: m.seconds)
    return Measure(best.rows, best.seconds, best.bytes, max(m.rss_kib for m in measures), best.error)


def rate(value: float) -> str:
    if not value:
        return "n/a"
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"


def size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n else "n/a"


def rss(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB" if kib else "n/a"


ROW = "{:<13} {:>9} {:>8} {:>8} {:>7} {:>9} {:>9} {:>10}  {}"


def header() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = []
    for module in ("pyarrow", "duckdb", "polars", "pyogrio"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module} missing")
    try:
        gdal = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True).stdout.split(",")[0]
    except OSError:
        gdal = "ogr2ogr missing"
    return (f"exportd bench, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} x {cpu}, "
            f"Python {platform.python_version()}; {', '.join(versions)}; {gdal}")


def cases(args: argparse.Namespace) -> list[Case]:
    everything = []
    for fmt in REGISTRY.names():
        everything.append(Case(fmt, "points", args.rows if fmt in FAST else args.slow_rows))
        if fmt in POLYGON_FORMATS:
            everything.append(Case(fmt, "polygons", max(args.rows // 10, 1)))
    if not args.formats:
        return everything
    wanted = [w.strip() for w in args.formats.split(",") if w.strip()]
    known = {c.label for c in everything} | {c.format for c in everything}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        sys.exit(f"unknown format(s) {', '.join(unknown)}; choose among {', '.join(sorted(known))}")
    return [c for c in everything if c.label in wanted or c.format in wanted]


def run_case(case: Case, runner: Runner, with_baselines: bool, repeat: int) -> tuple[Measure, list]:
    """Ours, then each baseline of the format, one after the other, `repeat` times."""
    sides = [b for b in baselines.for_format(case.format) if with_baselines
             and (case.dataset != "polygons" or b.programs or "pyogrio" in b.modules)]  # GDAL's take polygons
    runs: dict[str, list[Measure]] = {"ours": []}
    for baseline in sides:
        lacking = baseline.missing()
        runs[baseline.name] = [Measure(error=f"missing {lacking}")] if lacking else []
    for _ in range(repeat):
        runs["ours"].append(runner.measure(case, "ours"))
        for baseline in sides:
            if not baseline.missing():
                runs[baseline.name].append(runner.measure(case, baseline.name))
    return fastest(runs["ours"]), [(b, fastest(runs[b.name])) for b in sides]


def line(case: Case, mine: Measure, measured: list, quick: bool) -> str:
    best = max(measured, key=lambda m: m[1].per_second, default=None)
    base = best[1] if best and best[1].ok else None
    if base:
        label = best[0].label(quick)
    else:
        label = "n/a" + (f" ({best[1].error[:80]})" if best else "")
    others = [f"{b.name} {rate(m.per_second)}" for b, m in measured if best and b is not best[0]]
    if others:
        label += f" ({'; '.join(others)})"
    ratio = f"{mine.per_second / base.per_second:.2f}x" if base and mine.ok else "n/a"
    text = ROW.format(case.label, f"{case.rows:,}", rate(mine.per_second), rate(base.per_second if base else 0), ratio,
                      f"{mine.mb_per_s:.1f}" if mine.ok else "n/a", rss(mine.rss_kib), size(mine.bytes), label)
    return text + (f"\n  ours failed: {mine.error}" if mine.error else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export formats, ours beside native baselines.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the main dataset (default 1,000,000)")
    parser.add_argument("--slow-rows", type=int, help="rows for the slow formats (default rows/10)")
    parser.add_argument("--quick", action="store_true", help="100,000 rows (slow formats 10,000)")
    parser.add_argument("--formats", help="comma-separated formats or cases (e.g. csv,shp/poly); default all")
    parser.add_argument("--no-baselines", action="store_true", help="measure ours only")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before one measurement is killed")
    parser.add_argument("--repeat", type=int, default=1, help="measure each side this many times, keep the fastest")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = 100_000
    args.slow_rows = args.slow_rows or max(args.rows // 10, 1)

    selected = cases(args)
    runner = Runner(args.timeout, args.quick)
    flat = [f for f in FLAT_FORMATS if args.slow_rows < args.rows
            and any(c.format == f and c.dataset == "points" and c.rows == args.rows for c in selected)]
    gdal = any(b.programs and not b.missing() for c in selected for b in baselines.for_format(c.format))
    report: list[str] = []

    def say(text: str = "") -> None:  # printed now, and kept for BENCHMARKS.md
        print(text, flush=True)
        report.append(text)

    say(header())
    print("preparing datasets (cached in bench/out/) ...", file=sys.stderr, flush=True)
    needed = {(c.dataset, c.rows) for c in selected} | ({("points", args.slow_rows)} if flat else set())
    for dataset, rows in sorted(needed):
        load(dataset, rows, gdal=gdal)

    say()
    say(ROW.format("format", "rows", "ours/s", "base/s", "ratio", "ours MB/s", "ours RSS", "ours size",
                     "best baseline (others)"))
    ours: dict[Case, Measure] = {}
    details = []
    for case in selected:
        mine, measured = run_case(case, runner, not args.no_baselines, max(args.repeat, 1))
        ours[case] = mine
        details += [(case, b, m) for b, m in measured]
        say(line(case, mine, measured, args.quick))

    if details:
        say("\nbaselines: rows/s, MB/s, peak RSS, output size")
        for case, baseline, m in details:
            shown = (f"{rate(m.per_second):>8} {m.mb_per_s:7.1f} MB/s {rss(m.rss_kib):>9} {size(m.bytes):>10}"
                     if m.ok else f"n/a ({m.error})")
            say(f"  {case.label:<13} {baseline.label(args.quick):<48} {shown}")

    if flat:
        say(f"\nmemory flatness: peak RSS of our export at {args.slow_rows:,} rows -> {args.rows:,} rows")
        for fmt in flat:
            big = next(m for c, m in ours.items() if c.format == fmt and c.rows == args.rows)
            small = runner.measure(Case(fmt, "points", args.slow_rows), "ours")
            growth = f"x{big.rss_kib / small.rss_kib:.2f}" if big.rss_kib and small.rss_kib else "n/a"
            say(f"  {fmt:<8} {rss(small.rss_kib):>9} -> {rss(big.rss_kib):>9}  ({growth})")
    if not args.formats:
        write_section("formats", "Export formats, ours beside native baselines", "```\n" + "\n".join(report) + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
