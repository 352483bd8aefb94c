"""Native baselines: what a user could run instead of exportd to turn the same records into
the same format. Each reads the stored Parquet (or, for ogr2ogr, the FlatGeobuf copy of it,
see bench/dataset.py) and writes one file; bench/one.py times it in a fresh process.

A baseline declares the modules and programs it needs; a missing one makes it unavailable
(printed as n/a), never a crash. Baselines marked with a sample run on the first `sample`
rows only, and their rate is extrapolated: they are too slow for the whole dataset. With
`--quick`, the slow ones (xlsxwriter, icalendar, rdflib, ogr2ogr's GeoJSON) run on
`quick_sample` rows.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.dataset import Bench
from domain.fields import Field


@dataclass(frozen=True)
class Baseline:
    name: str
    run: Callable[[Bench, Path, int | None], Path]  # (dataset, output directory, sample) -> output file
    modules: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()
    sample: int | None = None  # rows actually processed; the rate is extrapolated
    quick_sample: int | None = None  # the same in quick mode (bench.run --quick)

    def missing(self) -> str | None:
        """What this baseline lacks here, or None when it can run."""
        lacking = [m for m in self.modules if importlib.util.find_spec(m) is None]
        lacking += [p for p in self.programs if shutil.which(p) is None]
        return ", ".join(lacking) or None

    def sample_for(self, quick: bool) -> int | None:
        return self.quick_sample or self.sample if quick else self.sample

    def label(self, quick: bool = False) -> str:
        sample = self.sample_for(quick)
        return f"{self.name} (sample {sample:,}, extrapolated)" if sample else self.name


def _head(bench: Bench, rows: int | None) -> pa.Table:
    """The first `rows` records (all of them when None)."""
    reader = pq.ParquetFile(bench.path)
    if rows is None:
        return reader.read()
    return pa.Table.from_batches([next(reader.iter_batches(batch_size=rows))])


def _first(fields: list[Field], *types: str, after: int = -1) -> int | None:
    return next((i for i, f in enumerate(fields) if f.type in types and i > after), None)


# -- DuckDB and polars: csv, json, jsonl, parquet -------------------------------------------

def _duckdb_select(bench: Bench, lat_lon_text: bool) -> str:
    columns = []
    for f in bench.dataset.fields:
        if f.type == "geo_point_2d" and lat_lon_text:  # CSV holds no struct: "lat, lon" as exportd
            columns.append(f'CAST("{f.name}".lat AS VARCHAR) || \', \' || CAST("{f.name}".lon AS VARCHAR) AS "{f.name}"')
        else:
            columns.append(f'"{f.name}"')
    return f"SELECT {', '.join(columns)} FROM read_parquet('{bench.path}')"


def _duckdb(copy_options: str, extension: str, lat_lon_text: bool = False):
    def run(bench: Bench, out: Path, sample: int | None) -> Path:
        import duckdb

        target = out / f"duckdb.{extension}"
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY ({_duckdb_select(bench, lat_lon_text)}) TO '{target}' ({copy_options})")
        con.close()
        return target
    return run


def _polars_frame(bench: Bench, lat_lon_text: bool):
    import polars as pl

    frame = pl.scan_parquet(bench.path)
    if lat_lon_text:
        frame = frame.with_columns(
            pl.format("{}, {}", pl.col(f.name).struct.field("lat"), pl.col(f.name).struct.field("lon")).alias(f.name)
            for f in bench.dataset.fields if f.type == "geo_point_2d"
        )
    return frame


def polars_csv(bench: Bench, out: Path, sample: int | None) -> Path:
    target = out / "polars.csv"
    _polars_frame(bench, True).sink_csv(target, separator=";")
    return target


def polars_json(bench: Bench, out: Path, sample: int | None) -> Path:
    target = out / "polars.json"
    _polars_frame(bench, False).collect().write_json(target)  # polars writes a JSON array eagerly only
    return target


def polars_jsonl(bench: Bench, out: Path, sample: int | None) -> Path:
    target = out / "polars.jsonl"
    _polars_frame(bench, False).sink_ndjson(target)
    return target


def polars_parquet(bench: Bench, out: Path, sample: int | None) -> Path:
    target = out / "polars.parquet"
    _polars_frame(bench, False).sink_parquet(target, compression="snappy")
    return target


# -- GDAL's ogr2ogr: geojson, shp, fgb, kml, gpx, gpkg, fgdb ---------------------------------

def _ogr2ogr(driver: str, file_name: str, *extra: str):
    def run(bench: Bench, out: Path, sample: int | None) -> Path:
        target = out / file_name
        first_text = bench.dataset.fields[_first(bench.dataset.fields, "text") or 0].name
        args = [a.format(layer=bench.name, name=first_text) for a in extra] + (["-limit", str(sample)] if sample else [])
        subprocess.run(["ogr2ogr", "-f", driver, str(target), str(bench.gdal_source), *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return target
    return run


# -- pyogrio's Arrow writer: shp, fgb, kml, gpx ---------------------------------------------

def _pyogrio_reader(bench: Bench, driver: str) -> pa.RecordBatchReader:
    """The stored records as a user would hand them to pyogrio.write_arrow: the plain fields
    as stored, the geometry as WKB (points built with shapely from geo_point_2d). FlatGeobuf's
    index and GPX waypoints need a geometry: records without one are left out there. GDAL's GPX
    layer has fixed fields its Arrow path cannot fill (`name` fails), so for gpx the first
    text field goes into <extensions>."""
    import shapely

    fields = bench.dataset.fields
    geo = _first(fields, "geo_shape")
    geo = _first(fields, "geo_point_2d") if geo is None else geo
    kept = [i for i, f in enumerate(fields) if f.type not in ("geo_point_2d", "geo_shape")]
    kept = kept if driver != "GPX" else [_first(fields, "text")]
    source = pq.ParquetFile(bench.path)
    schema = pa.schema([source.schema_arrow.field(i) for i in kept] + [pa.field("geometry", pa.binary())])

    def batches():
        for batch in source.iter_batches(batch_size=64 * 1024):
            column = batch.column(geo)
            if fields[geo].type == "geo_point_2d":
                points = shapely.points(column.field("lon").to_numpy(zero_copy_only=False),
                                        column.field("lat").to_numpy(zero_copy_only=False))
                points[~column.is_valid().to_numpy(zero_copy_only=False)] = None
                column = pa.array(shapely.to_wkb(points), pa.binary())
            out = pa.RecordBatch.from_arrays([batch.column(i) for i in kept] + [column], schema=schema)
            yield out.filter(column.is_valid()) if driver in ("GPX", "FlatGeobuf") else out
    return pa.RecordBatchReader.from_batches(schema, batches())


def _pyogrio(driver: str, file_name: str, **options):
    def run(bench: Bench, out: Path, sample: int | None) -> Path:
        import pyogrio

        target = out / file_name
        first_text = bench.dataset.fields[_first(bench.dataset.fields, "text") or 0].name
        dataset_options = {k: v.format(name=first_text) for k, v in options.items()}
        pyogrio.write_arrow(_pyogrio_reader(bench, driver), str(target), driver=driver,
                            geometry_name="geometry", geometry_type="Point" if bench.name == "points" else "Polygon",
                            crs="EPSG:4326", dataset_options=dataset_options)
        return target
    return run


# -- xlsxwriter, constant memory, one write_row per record -----------------------------------

def xlsxwriter_loop(bench: Bench, out: Path, sample: int | None) -> Path:
    import xlsxwriter

    target = out / "xlsxwriter.xlsx"
    book = xlsxwriter.Workbook(str(target), {
        "constant_memory": True, "default_date_format": "yyyy-mm-dd hh:mm:ss",
        "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False,
    })
    fields = bench.dataset.fields
    header = [f.name for f in fields]
    sheet, row = None, 1 << 30
    for batch in pq.ParquetFile(bench.path).iter_batches(batch_size=min(16 * 1024, sample or bench.rows)):
        columns = []
        for f, column in zip(fields, batch.columns):
            if f.type == "datetime":  # xlsxwriter refuses tz-aware datetimes
                column = column.cast(pa.timestamp("us"))
            elif f.type == "geo_point_2d":
                column = pc.binary_join_element_wise(column.field("lat").cast(pa.string()),
                                                     column.field("lon").cast(pa.string()), ", ")
            columns.append(column.to_pylist())
        for values in zip(*columns):
            if row >= 1_048_576:
                sheet, row = book.add_worksheet(), 1
                sheet.write_row(0, 0, header)
            sheet.write_row(row, 0, values)
            row += 1
        if sample:
            break
    book.close()
    return target


# -- icalendar objects, one Event per record (sampled) --------------------------------------

def icalendar_loop(bench: Bench, out: Path, sample: int | None) -> Path:
    from datetime import datetime, timezone

    from icalendar import Calendar, Event

    target = out / "icalendar.ics"
    fields = bench.dataset.fields
    start = _first(fields, "datetime", "date")
    end = _first(fields, "datetime", "date", after=start)
    summary = _first(fields, "text")
    description = _first(fields, "text", after=summary)
    geo = _first(fields, "geo_point_2d")
    stamp = datetime.now(timezone.utc)
    table = _head(bench, sample)
    rows = zip(*(column.to_pylist() for column in table.columns))
    cal = Calendar()
    cal.add("prodid", "-//bench//icalendar//EN")
    cal.add("version", "2.0")
    for n, row in enumerate(rows):
        if row[start] is None:
            continue
        event = Event()
        event.add("uid", f"{n}@bench")
        event.add("dtstamp", stamp)
        event.add("dtstart", row[start])
        if end is not None and row[end] is not None:
            event.add("dtend", row[end])
        if summary is not None and row[summary] is not None:
            event.add("summary", row[summary])
        if description is not None and row[description] is not None:
            event.add("description", row[description])
        if geo is not None and row[geo] is not None:
            event.add("geo", (row[geo]["lat"], row[geo]["lon"]))
        cal.add_component(event)
    target.write_bytes(cal.to_ical())
    return target


# -- rdflib: a Graph of the records, serialised (sampled) -----------------------------------

def _rdflib(syntax: str, extension: str):
    def run(bench: Bench, out: Path, sample: int | None) -> Path:
        from rdflib import Graph, Literal, URIRef
        from rdflib.namespace import XSD

        geo_wkt = URIRef("http://www.opengis.net/ont/geosparql#wktLiteral")
        datatypes = {"int": XSD.integer, "double": XSD.double, "boolean": XSD.boolean, "date": XSD.date,
                     "datetime": XSD.dateTime}
        fields = bench.dataset.fields
        predicates = [URIRef(f"urn:exportd:field:{f.name}") for f in fields]
        table = _head(bench, sample)
        graph = Graph()
        for n, row in enumerate(zip(*(column.to_pylist() for column in table.columns)), start=1):
            subject = URIRef(f"urn:exportd:record:{n}")
            for f, predicate, value in zip(fields, predicates, row):
                if value is None:
                    continue
                if f.type == "geo_point_2d":
                    literal = Literal(f"POINT({value['lon']} {value['lat']})", datatype=geo_wkt)
                else:
                    literal = Literal(value, datatype=datatypes.get(f.type))
                graph.add((subject, predicate, literal))
        target = out / f"rdflib.{extension}"
        graph.serialize(destination=str(target), format=syntax)
        return target
    return run


# -- OV2: numpy packing -----------------------------------------------------------------------

def numpy_ov2(bench: Bench, out: Path, sample: int | None) -> Path:
    """Type-2 records (1 byte type, int32 length, int32 lon and lat × 1e5, name, NUL), all the
    fixed parts and names of a batch scattered into one byte array with numpy."""
    import numpy as np

    target = out / "numpy.ov2"
    fields = bench.dataset.fields
    geo, name = _first(fields, "geo_point_2d"), _first(fields, "text")
    with open(target, "wb") as f:
        for batch in pq.ParquetFile(bench.path).iter_batches(batch_size=64 * 1024, columns=[fields[geo].name, fields[name].name]):
            points, names = batch.column(0), batch.column(1)
            keep = points.is_valid()
            points, names = points.filter(keep), names.filter(keep).fill_null("")
            encoded = [s.encode("latin-1", "replace") for s in names.to_pylist()]
            lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
            sizes = 13 + lengths + 1
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            buf = np.zeros(int(sizes.sum()), np.uint8)
            header = np.zeros(len(encoded), np.dtype([("t", "u1"), ("n", "<i4"), ("x", "<i4"), ("y", "<i4")]))
            header["t"], header["n"] = 2, sizes
            header["x"] = np.rint(points.field("lon").to_numpy() * 100_000)
            header["y"] = np.rint(points.field("lat").to_numpy() * 100_000)
            fixed = header.view(np.uint8).reshape(-1, 13)
            for k in range(13):
                buf[starts + k] = fixed[:, k]
            name_bytes = np.frombuffer(b"".join(encoded), np.uint8)
            name_pos = np.repeat(starts + 13 - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
            buf[name_pos + np.arange(len(name_bytes))] = name_bytes
            f.write(buf.tobytes())
    return target


DUCKDB, POLARS, GDAL, PYOGRIO = ("duckdb",), ("polars",), ("ogr2ogr",), ("pyogrio", "shapely")
RDF_SAMPLE = 2_000
ICAL_SAMPLE = 5_000
QUICK_SAMPLE = 300  # the slow Python loops, in quick mode
QUICK_OGR_SAMPLE = 10_000  # ogr2ogr's GeoJSON, 25k rows/s, beside our 100,000 in quick mode

BASELINES: dict[str, list[Baseline]] = {
    "csv": [Baseline("DuckDB COPY", _duckdb("HEADER, DELIMITER ';'", "csv", True), DUCKDB),
            Baseline("polars sink_csv", polars_csv, POLARS)],
    "json": [Baseline("DuckDB COPY", _duckdb("FORMAT json, ARRAY true", "json"), DUCKDB),
             Baseline("polars write_json", polars_json, POLARS)],
    "jsonl": [Baseline("DuckDB COPY", _duckdb("FORMAT json", "jsonl"), DUCKDB),
              Baseline("polars sink_ndjson", polars_jsonl, POLARS)],
    "parquet": [Baseline("DuckDB COPY", _duckdb("FORMAT parquet, COMPRESSION snappy", "parquet"), DUCKDB),
                Baseline("polars sink_parquet", polars_parquet, POLARS)],
    "geojson": [Baseline("ogr2ogr", _ogr2ogr("GeoJSON", "ogr.geojson", "-lco", "RFC7946=YES"), programs=GDAL,
                         quick_sample=QUICK_OGR_SAMPLE)],
    "shp": [Baseline("ogr2ogr .shp.zip", _ogr2ogr("ESRI Shapefile", "ogr.shp.zip", "-lco", "ENCODING=UTF-8"),
                     programs=GDAL),
            Baseline("pyogrio write_arrow .shp.zip", _pyogrio("ESRI Shapefile", "pyogrio.shp.zip"), PYOGRIO)],
    "fgb": [Baseline("ogr2ogr", _ogr2ogr("FlatGeobuf", "ogr.fgb"), programs=GDAL),
            Baseline("pyogrio write_arrow", _pyogrio("FlatGeobuf", "pyogrio.fgb"), PYOGRIO)],
    "kml": [Baseline("ogr2ogr", _ogr2ogr("KML", "ogr.kml", "-dsco", "NameField={name}"), programs=GDAL),
            Baseline("pyogrio write_arrow", _pyogrio("KML", "pyogrio.kml", NameField="{name}"), PYOGRIO)],
    "gpx": [Baseline("ogr2ogr", _ogr2ogr("GPX", "ogr.gpx", "-sql", 'SELECT "{name}" AS name FROM {layer} WHERE OGR_GEOMETRY = \'POINT\''),
                     programs=GDAL),
            Baseline("pyogrio write_arrow", _pyogrio("GPX", "pyogrio.gpx", GPX_USE_EXTENSIONS="YES"), PYOGRIO)],
    "gpkg": [Baseline("ogr2ogr", _ogr2ogr("GPKG", "ogr.gpkg"), programs=GDAL),
             Baseline("pyogrio write_arrow", _pyogrio("GPKG", "pyogrio.gpkg"), PYOGRIO)],
    "fgdb": [Baseline("ogr2ogr .gdb (not zipped)", _ogr2ogr("OpenFileGDB", "ogr.gdb"), programs=GDAL)],
    "xlsx": [Baseline("xlsxwriter constant_memory loop", xlsxwriter_loop, ("xlsxwriter",), quick_sample=QUICK_SAMPLE)],
    "ical": [Baseline("icalendar objects", icalendar_loop, ("icalendar",), sample=ICAL_SAMPLE, quick_sample=QUICK_SAMPLE)],
    "ov2": [Baseline("numpy packing", numpy_ov2, ("numpy",))],
    "jsonld": [Baseline("rdflib json-ld", _rdflib("json-ld", "jsonld"), ("rdflib",), sample=RDF_SAMPLE,
                 quick_sample=QUICK_SAMPLE)],
    "turtle": [Baseline("rdflib turtle", _rdflib("turtle", "ttl"), ("rdflib",), sample=RDF_SAMPLE,
                 quick_sample=QUICK_SAMPLE)],
    "n3": [Baseline("rdflib n3", _rdflib("n3", "n3"), ("rdflib",), sample=RDF_SAMPLE,
                 quick_sample=QUICK_SAMPLE)],
    "rdfxml": [Baseline("rdflib xml", _rdflib("xml", "rdf"), ("rdflib",), sample=RDF_SAMPLE,
                 quick_sample=QUICK_SAMPLE)],
}


def for_format(name: str) -> list[Baseline]:
    return BASELINES.get(name, [])


def find(format_name: str, baseline_name: str) -> Baseline:
    return next(b for b in for_format(format_name) if b.name == baseline_name)
