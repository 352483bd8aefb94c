"""formats/dbf.py: the DBF table of a shapefile, read back by a decoder written here from the
dBase III layout and by GDAL (fiona); doubles against C's printf, as Python's % formats them."""
from __future__ import annotations

import datetime
import io
import struct

import fiona
import numpy as np
import pyarrow as pa
import pytest

from formats import dbf
from formats.dbf import DbfWriter, double_cells, field_of
from formats.geo import esri_wkt
from formats.shapefile import WGS84_PRJ


def decode(data: bytes) -> tuple[list[tuple[str, str, int, int]], list[list[bytes]]]:
    """([(name, type, width, decimals)], records as their cells' raw bytes)."""
    version, yy, mm, dd, count, header, record = struct.unpack("<4BIHH20x", data[:32])
    assert version == 3 and datetime.date(1900 + yy, mm, dd) == datetime.date.today()
    fields, at = [], 32
    while data[at] != 0x0D:
        name, kind, width, decimals = struct.unpack("<11sc4xBB14x", data[at:at + 32])
        fields.append((name.rstrip(b"\0").decode(), kind.decode(), width, decimals))
        at += 32
    assert at + 1 == header and record == 1 + sum(f[2] for f in fields)
    assert len(data) == header + count * record + 1 and data[-1:] == b"\x1a"
    records = []
    for i in range(count):
        row = data[header + i * record: header + (i + 1) * record]
        assert row[:1] == b" "  # not deleted
        cells, at = [], 1
        for _, _, width, _ in fields:
            cells.append(row[at:at + width])
            at += width
        records.append(cells)
    return fields, records


def written(tmp_path, batches: list[dict[str, pa.Array]]) -> bytes:
    names = list(batches[0])
    writer = DbfWriter(tmp_path / "t.blocks", [field_of(n, batches[0][n].type) for n in names])
    for batch in batches:
        writer.write([batch[n] for n in names])
    out = io.BytesIO()
    writer.copy(out)
    return out.getvalue()


def test_fields_take_the_width_of_their_widest_value_across_batches(tmp_path):
    """A narrow batch's cells are re-laid at the widths a later batch needed: text left-aligned,
    numbers right-aligned, a null number all `*`, a null date zeros, a null boolean `?`."""
    first = {"t": pa.array(["a", None]), "n": pa.array([7, None]), "x": pa.array([1.5, None]),
             "b": pa.array([True, None]), "d": pa.array([datetime.date(2024, 6, 21), None])}
    second = {"t": pa.array(["Ünïcødé ≠", "trailing  "]), "n": pa.array([-123456, 42]), "x": pa.array([-0.25, 1e20]),
              "b": pa.array([False, True]), "d": pa.array([datetime.date(1999, 12, 31), datetime.date(2030, 1, 1)])}
    data = written(tmp_path, [first, second])
    fields, records = decode(data)
    assert fields == [("t", "C", 15, 0), ("n", "N", 7, 0), ("x", "N", 24, 15), ("b", "L", 1, 0), ("d", "D", 8, 0)]
    assert records == [
        [b"a" + b" " * 14, b"      7", b"       1.500000000000000", b"T", b"20240621"],
        [b" " * 15, b"*******", b"*" * 24, b"?", b"00000000"],
        ["Ünïcødé ≠".encode(), b"-123456", b"      -0.250000000000000", b"F", b"19991231"],
        [b"trailing" + b" " * 7, b"     42", b"   1.000000000000000e+20", b"T", b"20300101"],
    ]
    path = tmp_path / "t.dbf"
    path.write_bytes(data)
    with fiona.open(path, encoding="utf-8") as src:  # GDAL's reading of the same file (the .cpg says UTF-8)
        got = [dict(f.properties) for f in src]
    assert got == [
        {"t": "a", "n": 7, "x": 1.5, "b": True, "d": "2024-06-21"},
        {"t": None, "n": None, "x": None, "b": None, "d": None},
        {"t": "Ünïcødé ≠", "n": -123456, "x": -0.25, "b": False, "d": "1999-12-31"},
        {"t": "trailing", "n": 42, "x": 1e20, "b": True, "d": "2030-01-01"},
    ]


def test_an_empty_table_is_a_header(tmp_path):
    fields, records = decode(written(tmp_path, [{"t": pa.array([], pa.string()), "n": pa.array([], pa.int64())}]))
    assert fields == [("t", "C", 1, 0), ("n", "N", 1, 0)] and records == []


def test_a_record_past_65535_bytes_is_refused(tmp_path):
    wide = "x" * 254
    writer = DbfWriter(tmp_path / "t.blocks", [field_of(f"t{i}", pa.string()) for i in range(300)])
    with pytest.raises(ValueError, match="65535"):
        writer.write([pa.array([wide]) for _ in range(300)])


def test_doubles_are_printf_s_percent_24_15f():
    """Rounding as printf's (ties to even on the exact binary value, carries into the whole
    part), the sign of -0.0, and the values long double leaves to Python near a tie."""
    rng = np.random.default_rng(5)
    values = np.concatenate([
        rng.uniform(-1e7, 1e8, 20000), rng.uniform(-1, 1, 20000), rng.normal(0, 1e3, 20000).round(2),
        rng.uniform(-1e-9, 1e-9, 2000), [0.0, -0.0, 2.0**-16, 3 * 2.0**-17, 0.9999999999999999, 9.9999999999999999,
                                         -0.0000000000000005, 99999999.99999999, -9999999.999999998],
    ])
    cells = double_cells(pa.array(values)).to_pylist()
    assert cells == ["%24.15f" % v for v in values]


def test_doubles_past_24_characters_are_in_exponent_form_and_nulls_starred():
    values = [1e8, -1e7, 1.5e300, float("nan"), float("inf"), float("-inf"), None]
    assert double_cells(pa.array(values, pa.float64())).to_pylist() == [
        "   1.000000000000000e+08", "  -1.000000000000000e+07", "  1.500000000000000e+300",
        "                     nan", "                     inf", "                    -inf", "*" * 24]


def test_wgs84_prj_is_gdal_s():
    assert esri_wkt(4326) == WGS84_PRJ
    assert esri_wkt(3857).startswith('PROJCS["WGS_1984_Web_Mercator_Auxiliary_Sphere"')


def test_every_arrow_type_written_has_a_field():
    assert [field_of("f", t).kind for t in (pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.date32())] == \
        ["C", "N", "N", "L", "D"]
    with pytest.raises(TypeError):
        field_of("f", pa.binary())
    assert dbf.MAX_TEXT == 254


def test_records_written_in_parts_make_the_same_file(tmp_path):
    """The runs of blocks `groups` gives cover every block once, in order, about evenly; their
    records written one run after the other make the file `copy` makes."""
    names = ["t", "n"]
    writer = DbfWriter(tmp_path / "t.blocks", [field_of("t", pa.string()), field_of("n", pa.int64())])
    for size in (5, 1, 7, 3, 4):
        writer.write([pa.array(["x" * size] * size), pa.array(range(size))])
    groups = writer.groups(2)
    assert [b for group in groups for b in group] == writer.blocks
    assert [sum(b.rows for b in group) for group in groups] == [13, 7]
    whole, parts = io.BytesIO(), io.BytesIO()
    writer.copy(whole)
    parts.write(writer.head())
    for i, group in enumerate(groups):
        writer.copy_records(group, parts, last=i == len(groups) - 1)
    assert parts.getvalue() == whole.getvalue()
    assert len(decode(whole.getvalue())[1]) == 20 and names == [f[0] for f in decode(whole.getvalue())[0]]
    assert DbfWriter(tmp_path / "e.blocks", writer.fields).groups(2) == [[]]
