"""Benchmarks: `python -m bench.run` (`make bench`) times every export format through the
worker's own path beside a native baseline (DuckDB, polars, ogr2ogr, xlsxwriter, icalendar,
rdflib, numpy). See bench/run.py; `--help` lists the options."""
