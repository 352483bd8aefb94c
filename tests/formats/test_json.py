"""JSON and JSON Lines writers: read back with orjson, compared with the samples record by
record, including text that needs escaping, NaN/inf and every value type."""
from __future__ import annotations

import math
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa
import pytest
import shapely

from domain.fields import fields_of, with_fields
from formats.parallel import INLINE_ROWS
from tests.formats.samples import awkward_table, empty_table, null_table, open_writer, write

NASTY = ["a\x00b\x01\x1f\x7f", "\u2028\u2029 é 東 😀", 'q"\\/\b\f\n\r\t', "", "plain", None]


def read(name: str, data: bytes) -> list[dict]:
    if name == "json":
        return orjson.loads(data)
    assert data == b"" or data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def expected(record: dict, tz: str) -> dict:
    out = {}
    for name, value in record.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, datetime):
            value = value.astimezone(ZoneInfo(tz)).isoformat()
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, bytes):
            value = shapely.from_wkb(value)
        out[name] = value
    return out


def same(got, want) -> bool:
    if isinstance(want, shapely.Geometry):
        return shapely.equals_exact(shapely.from_geojson(orjson.dumps(got)), want, tolerance=1e-9)
    if isinstance(want, dict):
        return isinstance(got, dict) and list(got) == list(want) and all(same(got[k], want[k]) for k in want)
    return type(got) is type(want) and got == want


@pytest.mark.parametrize("name", ["json", "jsonl"])
@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/New_York"])
@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_awkward_table_round_trips_every_record_and_field(name, tz, batch_size) -> None:
    table = awkward_table()
    got = read(name, write(name, table, {"timezone": tz}, batch_size=batch_size)[0])
    assert len(got) == table.num_rows
    for record, want in zip(got, table.to_pylist()):
        assert same(record, expected(want, tz)), (record, want)


@pytest.mark.parametrize("name", ["json", "jsonl"])
def test_escaping_and_numbers(name) -> None:
    table = pa.table({
        "text": NASTY,
        "double": [float("nan"), float("inf"), -float("inf"), 12.0, -0.0, 1e-7],
        "int": pa.array([2**62, -1, None, 0, 2**53 + 1, 7], pa.int64()),
    })
    table = table.replace_schema_metadata(with_fields(table.schema, fields_of(table.schema)).metadata)
    got = read(name, write(name, table)[0])
    assert [r["text"] for r in got] == NASTY
    assert [r["double"] for r in got] == [None, None, None, 12.0, -0.0, 1e-7]
    assert all(r["double"] is None or type(r["double"]) is float for r in got)
    assert [r["int"] for r in got] == [2**62, -1, None, 0, 2**53 + 1, 7]


@pytest.mark.parametrize("name", ["json", "jsonl"])
def test_empty_null_and_labels(name) -> None:
    assert read(name, write(name, empty_table())[0]) == []
    nulls = read(name, write(name, null_table())[0])
    assert nulls == [dict.fromkeys(awkward_table().column_names)] * 2
    labelled = read(name, write(name, awkward_table(), {"use_labels": True})[0])
    assert list(labelled[0]) == [f.label for f in fields_of(awkward_table().schema)]


def test_the_polars_path_writes_what_the_reference_rendering_gives():
    """Batches without geo_shape or lists go through polars' writer: same records, same values."""
    import orjson
    import pyarrow as pa

    from domain.fields import fields_of
    from formats.json import polars_lines, records
    from tests.formats.samples import awkward_table, write

    table = awkward_table().drop_columns(["geo_shape"])
    table = table.append_column("ratio", pa.array([float("nan"), float("inf"), -0.0, None, 1e300, 2.0]))
    fields = fields_of(table.schema)
    batch = table.to_batches()[0]
    assert polars_lines(batch, fields, table.column_names, "Europe/Paris") is not None  # the path is taken
    expected = [orjson.loads(orjson.dumps(r)) for b in table.to_batches()
                for r in records(b, fields, table.column_names, "Europe/Paris")]
    lines, _ = write("jsonl", table, {"timezone": "Europe/Paris"})
    assert [orjson.loads(line) for line in lines.splitlines()] == expected
    array, _ = write("json", table, {"timezone": "Europe/Paris"})
    assert orjson.loads(array) == expected
    assert polars_lines(awkward_table().to_batches()[0], fields_of(awkward_table().schema),
                        awkward_table().column_names, "UTC") is None  # geo_shape: the pyarrow path


@pytest.mark.parametrize("name", ["json", "jsonl"])
def test_many_batches_keep_their_order(name) -> None:
    """Batches are rendered two at a time on threads: records still come out in order, and
    the array's separators fall between them."""
    n = 5_000
    table = pa.table({"n": pa.array(range(n), pa.int64()), "text": [f"line\n{i}" for i in range(n)]})
    table = table.replace_schema_metadata(with_fields(table.schema, fields_of(table.schema)).metadata)
    got = read(name, write(name, table, batch_size=INLINE_ROWS + 1)[0])  # the last, smaller, after others
    assert got == [{"n": i, "text": f"line\n{i}"} for i in range(n)]


@pytest.mark.parametrize("name", ["json", "jsonl"])
def test_abort_writes_nothing_more(name) -> None:
    table = pa.concat_tables([awkward_table()] * 400).combine_chunks()
    writer, out = open_writer(name, table)
    for batch in table.to_batches(max_chunksize=INLINE_ROWS + 1):  # on the rendering threads
        writer.write(batch)
    writer.abort()
    written = out.getvalue()
    assert out.getvalue() == written and written.count(b"\n") < table.num_rows
