"""Scans read by polars (Scan.lazy): a writer that hands its batches to polars (Parquet) takes
a plain scan as one polars pipeline from the stored file; its file is the one the Arrow batches
give, and what it holds is the stored data. Progress is counted and cancellation stops it."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from domain import demo
from domain.fields import fields_of
from domain.query import RecordQuery, Scan
from domain.storage import ExportTooLarge, LocalStorage
from formats import REGISTRY
from tests.formats.samples import awkward_table
from worker.writing import Cancelled, Progress, write_export


@pytest.fixture(params=["demo", "awkward"])
def stored(request, tmp_path) -> tuple[pads.Dataset, pa.Table]:
    """A dataset's data as it is stored: a Parquet file of several row groups."""
    table = demo.table(rows=3000) if request.param == "demo" else awkward_table()
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=max(2, table.num_rows // 4))
    return pads.dataset(str(path), format="parquet"), table


def scan_of(stored, **query) -> Scan:
    source, table = stored
    return RecordQuery(**query).scan(source, fields_of(table.schema), batch_rows=500)


def test_a_plain_scan_reads_in_polars_the_records_the_batches_hold(stored) -> None:
    frame = scan_of(stored).lazy()
    assert frame is not None
    read = frame.collect()
    assert read.to_arrow().cast(stored[1].schema).to_pylist() == stored[1].to_pylist()


def test_renamed_and_limited_scans_read_in_polars_too(stored) -> None:
    table = stored[1]
    first, second = table.column_names[:2]
    scan = scan_of(stored, select=f"{second} as b, {first}", limit=5)
    batches = pa.Table.from_batches(list(scan_of(stored, select=f"{second} as b, {first}", limit=5).batches()))
    read = scan.lazy().collect()
    assert read.columns == ["b", first] == batches.column_names
    assert read.to_arrow().cast(batches.schema).to_pylist() == batches.to_pylist()


@pytest.mark.parametrize("query", [{"where": ["attendance > 0"]}, {"order_by": "attendance"},
                                   {"select": "count(*) as n"}, {"refine": ["category:music"]}])
def test_a_filtered_sorted_or_aggregated_scan_is_read_by_arrow(stored, query) -> None:
    scan = scan_of(stored, **query)
    assert scan.lazy() is None
    assert sum(batch.num_rows for batch in scan.batches()) == scan.count()  # still read, by Arrow


def parquet_export(tmp_path, scan: Scan, options: dict) -> tuple[pa.Table, bool]:
    """The export's file read back by pyarrow, and whether the writer takes a lazy scan."""
    fmt = REGISTRY.get("parquet")
    parsed = fmt.parse_options(options, scan.fields)
    storage = LocalStorage(tmp_path / "store")
    probe = fmt.open(io.BytesIO(), scan.schema, scan.fields, parsed)
    took = probe.takes_lazy
    probe.abort()
    progress = Progress()
    write_export(storage, "exports/x/1/out.parquet", "t", scan, fmt, parsed, progress)
    table = pq.read_table(storage.local_path("exports/x/1/out.parquet"))
    assert progress.done == table.num_rows  # counted as polars read, or batch by batch
    return table, took


@pytest.mark.parametrize("options", [{}, {"timezone": "Pacific/Auckland", "use_labels": True}])
def test_a_parquet_export_through_polars_is_the_export_from_batches(stored, tmp_path, options) -> None:
    plain = scan_of(stored)
    # every record, but a filter: the Arrow batches' path
    column = "attendance" if "attendance" in stored[1].column_names else stored[1].column_names[0]
    filtered = scan_of(stored, where=[f"{column} is null or {column} is not null"])
    assert filtered.lazy() is None
    assert scan_of(stored).lazy() is not None
    through_polars, took = parquet_export(tmp_path / "a", plain, options)
    from_batches, _ = parquet_export(tmp_path / "b", scan_of(stored, where=[f"{column} is null or {column} is not null"]), options)
    assert took
    assert through_polars.schema == from_batches.schema
    assert through_polars.schema.metadata == from_batches.schema.metadata
    assert through_polars.to_pylist() == from_batches.to_pylist()
    assert through_polars.num_rows == stored[1].num_rows
    zone = options.get("timezone", "UTC")
    stamps = [f for f in through_polars.schema if pa.types.is_timestamp(f.type)]
    assert stamps and all(f.type.tz == zone for f in stamps)


def test_a_cancelled_export_through_polars_leaves_nothing(tmp_path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(demo.table(rows=3000), path, row_group_size=500)
    table = pq.read_table(path)
    scan = RecordQuery().scan(pads.dataset(str(path), format="parquet"), fields_of(table.schema), batch_rows=500)
    fmt = REGISTRY.get("parquet")
    storage = LocalStorage(tmp_path / "store")
    progress = Progress()
    progress.cancel.set()
    with pytest.raises(Cancelled):
        write_export(storage, "exports/x/1/out.parquet", "t", scan, fmt, fmt.parse_options({}, scan.fields), progress)
    assert progress.done == 0
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]


def test_an_export_too_large_through_polars_says_so(tmp_path) -> None:
    """polars wraps the storage's refusal in its own error; the export still fails with it."""
    path = tmp_path / "data.parquet"
    pq.write_table(demo.table(rows=20_000), path)
    table = pq.read_table(path)
    scan = RecordQuery().scan(pads.dataset(str(path), format="parquet"), fields_of(table.schema))
    fmt = REGISTRY.get("parquet")
    storage = LocalStorage(tmp_path / "store")
    with pytest.raises(ExportTooLarge, match="10,000-byte limit"):
        write_export(storage, "exports/x/1/out.parquet", "t", scan, fmt, fmt.parse_options({}, scan.fields), Progress(),
                     max_bytes=10_000)
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
