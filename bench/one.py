"""One measurement, run by bench/run.py in a fresh process so that its peak RSS is its own:

    python -m bench.one --format csv --dataset points --rows 1000000 --side ours --result r.json

`--side ours` runs exactly the worker's path (the query's Scan over the stored Parquet, then
worker.writing.write_export into a LocalStorage in a temporary directory); any other side
names a baseline of bench/baselines.py. The result file gets the rows, seconds and output
bytes and the peak RSS as JSON. The peak RSS is read here, not from the parent's wait4:
a forked child's ru_maxrss starts at its parent's size. `--quick` runs the slow baselines on
their quick sample; bench/run.py --quick forks each measurement (run_logged) from a server
process that imported these modules once, instead of starting an interpreter.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.baselines import find
from bench.dataset import load

OUR_MODULES = ("domain.query", "domain.storage", "formats", "worker.writing")


def ours(bench, fmt_name: str, workdir: Path) -> tuple[int, int]:
    """(records scanned, output bytes) of one export of every record with default options,
    through the calls worker/export_job.py makes."""
    from domain.query import RecordQuery
    from domain.storage import LocalStorage
    from formats import REGISTRY
    from worker.writing import Progress, write_export

    storage = LocalStorage(workdir)
    fmt = REGISTRY.get(fmt_name)
    query = RecordQuery()
    if hasattr(query, "scan"):  # the ODSQL query: query.scan(source, fields)
        import pyarrow.dataset as pads

        scan = query.scan(pads.dataset(str(bench.path), format="parquet"), bench.dataset.fields)
    else:  # the query before it: Scan(path, dataset, query)
        from domain.query import Scan

        scan = Scan(str(bench.path), bench.dataset, query)
    scan.count()
    fmt.check(scan.fields)
    options = fmt.parse_options({}, scan.fields)
    if hasattr(scan, "projected"):
        scan = scan.projected(fmt.fields_read(scan.fields, options))
    progress = Progress()
    key = f"exports/bench/1/{fmt.filename(bench.dataset.dataset_id, options)}"
    written = write_export(storage, key, "bench~1", scan, fmt, options, progress, name=bench.dataset.dataset_id)
    return progress.done, written.size


def peak_rss_kib() -> int:
    """The larger of this process's peak RSS and that of the largest program it ran."""
    status = Path("/proc/self/status").read_text()
    own = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", required=True)
    parser.add_argument("--dataset", choices=("points", "polygons"), default="points")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--side", default="ours")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="slow baselines on their quick sample")
    args = parser.parse_args(argv)

    bench = load(args.dataset, args.rows, gdal=args.side.startswith("ogr2ogr"))
    baseline = None if args.side == "ours" else find(args.format, args.side)
    for module in OUR_MODULES if baseline is None else baseline.modules:
        importlib.import_module(module)  # imported before the clock starts
    result: dict = {"rows": bench.rows}
    with tempfile.TemporaryDirectory(prefix="exportd-bench-") as tmp:
        try:
            start = time.perf_counter()
            if baseline is None:
                result["rows"], result["bytes"] = ours(bench, args.format, Path(tmp))
            else:
                sample = baseline.sample_for(args.quick)
                output = baseline.run(bench, Path(tmp), sample)
                if sample:
                    result["rows"] = min(sample, bench.rows)
                result["bytes"] = (sum(p.stat().st_size for p in output.rglob("*") if p.is_file()) if output.is_dir()
                                   else output.stat().st_size)  # a .gdb is a folder
            result["seconds"] = time.perf_counter() - start
        except Exception as exc:  # reported as n/a by the parent, with the reason
            stderr = getattr(exc, "stderr", None)
            detail = stderr.decode(errors="replace").strip().splitlines()[-1:] if stderr else []
            result["error"] = " ".join([f"{type(exc).__name__}: {exc}", *detail])[:300]
            traceback.print_exc()
    result["rss_kib"] = peak_rss_kib()
    args.result.write_text(json.dumps(result))
    return 0


def run_logged(argv: list[str], log: Path) -> None:
    """main(argv) with stdout and stderr going to `log`: a forked measurement's entry point."""
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    main(argv)


if __name__ == "__main__":
    sys.exit(main())
