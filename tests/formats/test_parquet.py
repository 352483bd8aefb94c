"""Parquet writer: read back with pyarrow.parquet, compared with the samples; GeoParquet metadata."""
from __future__ import annotations

import gzip
import io

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from domain.fields import Field, fields_of, with_fields
from formats import REGISTRY, OptionError
from tests.formats.samples import awkward_table, empty_table, null_table, open_writer, write


def read(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def rows(table: pa.Table) -> list[dict]:
    """The records read back, geo_point_2d's WKB points as the {lon, lat} the dataset holds."""
    out = table.to_pylist()
    for row in out:
        for name, value in row.items():
            if name.startswith("geo_point") and value is not None:
                point = shapely.from_wkb(value)
                row[name] = {"lon": point.x, "lat": point.y}
    return out


def geo_metadata(data: bytes) -> dict | None:
    meta = pq.ParquetFile(io.BytesIO(data)).metadata.metadata
    return orjson.loads(meta[b"geo"]) if b"geo" in meta else None


def test_awkward_table_round_trips_with_types_kept() -> None:
    table = awkward_table()
    data, writer = write("parquet", table, {"timezone": "Europe/Paris"})
    got = read(data)
    assert got.column_names == table.column_names and writer.skipped == 0
    for column in table.schema:
        expected = {"starts_at": pa.timestamp("us", tz="Europe/Paris"), "geo_point_2d": pa.binary()}.get(column.name, column.type)
        assert got.schema.field(column.name).type == expected
    assert got.num_rows == table.num_rows
    for written, record in zip(rows(got), table.to_pylist()):
        assert written == record  # datetimes compare as instants
        if record["starts_at"] is not None:
            assert str(written["starts_at"].tzinfo) == "Europe/Paris"


def test_fields_travel_in_the_exportd_metadata() -> None:
    got = read(write("parquet", awkward_table())[0])
    assert fields_of(got.schema) == fields_of(awkward_table().schema)


def test_geoparquet_metadata() -> None:
    geo = geo_metadata(write("parquet", awkward_table())[0])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geo_shape"
    column = geo["columns"]["geo_shape"]
    assert column["encoding"] == "WKB"
    assert column["geometry_types"] == ["LineString", "MultiPolygon", "Point", "Polygon"]
    assert column["bbox"] == pytest.approx([-73.9857, 0.0, 3.0, 49.0])
    assert geo["columns"]["geo_point_2d"] == {"encoding": "WKB", "geometry_types": ["Point"],
                                              "bbox": pytest.approx([-73.9857, 0.5, 3.0, 48.8566])}
    assert "crs" not in column  # OGC:CRS84, GeoParquet's default


def test_points_alone_are_the_primary_geometry() -> None:
    geo = geo_metadata(write("parquet", awkward_table().drop_columns(["geo_shape"]))[0])
    assert geo["primary_column"] == "geo_point_2d" and set(geo["columns"]) == {"geo_point_2d"}


def test_no_geo_metadata_without_geometry() -> None:
    assert geo_metadata(write("parquet", awkward_table().drop_columns(["geo_shape", "geo_point_2d"]))[0]) is None


@pytest.mark.parametrize("name,codec", [("snappy", "SNAPPY"), ("zstd", "ZSTD"), ("gzip", "GZIP"), ("none", "UNCOMPRESSED")])
def test_compression_option(name: str, codec: str) -> None:
    data, _ = write("parquet", awkward_table(), {"parquet_compression": name})
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {codec}
    assert rows(read(data)) == awkward_table().to_pylist()


def test_default_compression_is_snappy() -> None:
    meta = pq.ParquetFile(io.BytesIO(write("parquet", awkward_table())[0])).metadata
    assert meta.row_group(0).column(0).compression == "SNAPPY"


def test_use_labels_renames_columns() -> None:
    got = read(write("parquet", awkward_table(), {"use_labels": True})[0])
    labels = [f.label for f in fields_of(awkward_table().schema)]
    assert got.column_names == labels
    assert got.column("Organiser Name 2").to_pylist() == awkward_table().column("organiser_name_2").to_pylist()
    assert geo_metadata(write("parquet", awkward_table(), {"use_labels": True})[0])["primary_column"] == "Geo Shape"


def test_empty_table() -> None:
    data, _ = write("parquet", empty_table())
    got = read(data)
    assert got.num_rows == 0 and got.column_names == awkward_table().column_names
    assert geo_metadata(data)["columns"]["geo_shape"] == {"encoding": "WKB", "geometry_types": []}


def test_null_table() -> None:
    data, _ = write("parquet", null_table())
    got = read(data)
    assert got.num_rows == 2
    assert all(value is None for row in got.to_pylist() for value in row.values())
    assert geo_metadata(data)["columns"]["geo_shape"]["geometry_types"] == []


def test_compressed_is_gzip_of_a_parquet_file() -> None:
    data, _ = write("parquet", awkward_table(), {"compressed": True})
    assert rows(read(gzip.decompress(data))) == awkward_table().to_pylist()


def test_bad_and_unknown_options() -> None:
    with pytest.raises(OptionError, match="parquet_compression"):
        write("parquet", awkward_table(), {"parquet_compression": "lzma"})
    with pytest.raises(OptionError, match="unknown option"):
        write("parquet", awkward_table(), {"compression": "zstd"})
    with pytest.raises(OptionError, match="epsg"):
        write("parquet", awkward_table(), {"epsg": 3857})


def test_format_needs_no_geometry() -> None:
    fmt = REGISTRY.get("parquet")
    fmt.check([Field("title", "text")])
    assert fmt.binary and fmt.media_type == "application/vnd.apache.parquet"
    table = awkward_table().select(["title", "attendance"])
    assert rows(read(write("parquet", table)[0])) == table.to_pylist()


def test_many_batches_keep_their_order() -> None:
    """Batches pulled by polars' sink through a bounded queue: every record, in order."""
    n = 50_000
    table = pa.table({"n": pa.array(range(n), pa.int64()), "text": [f"ligne\n{i} é" for i in range(n)]})
    table = table.replace_schema_metadata(with_fields(table.schema, fields_of(table.schema)).metadata)
    data, _ = write("parquet", table, batch_size=777)
    assert rows(read(data)) == table.to_pylist()


def test_dictionary_only_where_values_repeat() -> None:
    n = 20_000
    table = pa.table({"id": pa.array(range(n), pa.int64()), "kind": [f"k{i % 7}" for i in range(n)],
                      "price": pa.array([float(i % 300) / 4 for i in range(n)]),
                      "text": [f"unique text {i}" for i in range(n)]})
    table = table.replace_schema_metadata(with_fields(table.schema, fields_of(table.schema)).metadata)
    data, _ = write("parquet", table, batch_size=4096)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    dictionary = {meta.column(i).path_in_schema: meta.column(i).has_dictionary_page for i in range(meta.num_columns)}
    assert dictionary["kind"] and not dictionary["text"]  # as polars decides: where strings repeat
    assert rows(read(data)) == table.to_pylist()


def test_abort_writes_nothing_more() -> None:
    table = awkward_table()
    writer, out = open_writer("parquet", table)
    for batch in table.to_batches(max_chunksize=1):
        writer.write(batch)
    writer.abort()  # joins polars' sink: whatever it wrote (the storage drops it), it is done
    written = out.getvalue()
    assert not writer.writer.sink._thread.is_alive() and out.getvalue() == written


def test_an_export_publishes_again_as_the_same_records(tmp_path) -> None:
    """A Parquet export uploaded as a resource (its GeoParquet points included) reads back as
    the records it was made from."""
    from domain.resources import infer, read, sniff

    table = awkward_table()
    path = tmp_path / "export.parquet"
    path.write_bytes(write("parquet", table)[0])
    spec = sniff(path)
    fields = infer(path, spec)
    assert fields == fields_of(table.schema)
    parts = list(read(path, spec, fields))
    assert [r for part in parts for r in part.rejected] == []
    assert pa.Table.from_batches([part.batch for part in parts]).to_pylist() == table.to_pylist()
