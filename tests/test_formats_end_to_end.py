"""Every format in the registry, through the real path: POST → worker → ready → download →
read back with a reader that is not the writer. (Record-by-record comparisons of each format
are in tests/formats/; here the point is that each one works as an export.)"""
from __future__ import annotations

import csv
import gzip
import io
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import fiona
import icalendar
import openpyxl
import orjson
import pyarrow.parquet as pq
import pytest
import rdflib

from domain import demo
from formats import REGISTRY
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.formats.test_ov2 import decode as decode_ov2
from tests.osdi import create, download, export_id, poll
from tests.readback import gdal_layers

ROWS = 1500  # rdflib and icalendar parse slowly; tests/formats/ covers many batches
NO_POINT = sum(1 for i in range(1, ROWS + 1) if i % 50 == 0)  # demo records without a location


@pytest.fixture
async def small_demo(settings, tmp_path) -> str:
    path = tmp_path / "small.parquet"
    pq.write_table(demo.table(rows=ROWS), path)
    await load_dataset(settings, path, "demo-events")
    return "demo-events"


def fiona_count(data: bytes, suffix: str, layer: str | None = None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"export.{suffix}"
        path.write_bytes(data)
        source = f"zip://{path}" if suffix == "zip" else str(path)
        total = 0
        for name in [layer] if layer else fiona.listlayers(source):
            with fiona.open(source, layer=name) as collection:
                total += sum(1 for _ in collection)  # GPX layers cannot count themselves
        return total


def gdal_count(data: bytes, format_name: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return sum(len(layer.records) for layer in gdal_layers(data, format_name, Path(tmp)).values())


def gdal_layer_names(data: bytes, format_name: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        return list(gdal_layers(data, format_name, Path(tmp)))


def xlsx_rows(data: bytes) -> int:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        return sum(sheet.max_row - 1 for sheet in book.worksheets)
    finally:
        book.close()


def rdf_subjects(data: bytes, syntax: str) -> int:
    graph = rdflib.Graph().parse(data=data, format=syntax)
    return len(set(graph.subjects()))


READERS = {  # format → (records the file holds, according to an independent reader)
    "csv": lambda b: len(list(csv.reader(io.StringIO(b.decode("utf-8-sig"), newline=""), delimiter=";"))) - 1,
    "tsv": lambda b: len(list(csv.reader(io.StringIO(b.decode("utf-8"), newline=""), delimiter="\t"))) - 1,
    "json": lambda b: len(orjson.loads(b)),
    "jsonl": lambda b: len(b.splitlines()),
    "geojson": lambda b: len(orjson.loads(b)["features"]),
    "shp": lambda b: fiona_count(b, "zip"),
    "xlsx": lambda b: xlsx_rows(b),
    "ical": lambda b: len(icalendar.Calendar.from_ical(b).walk("VEVENT")),
    "ov2": lambda b: len(decode_ov2(b)),
    "parquet": lambda b: pq.read_table(io.BytesIO(b)).num_rows,
    "fgb": lambda b: fiona_count(b, "fgb"),
    "kml": lambda b: len(ET.fromstring(b).findall(".//{http://www.opengis.net/kml/2.2}Placemark")),
    "gpx": lambda b: fiona_count(b, "gpx", layer="waypoints"),
    "gpkg": lambda b: gdal_count(b, "gpkg"),
    "fgdb": lambda b: gdal_count(b, "fgdb"),
    "jsonld": lambda b: rdf_subjects(b, "json-ld"),
    "turtle": lambda b: rdf_subjects(b, "turtle"),
    "n3": lambda b: rdf_subjects(b, "n3"),
    "rdfxml": lambda b: rdf_subjects(b, "xml"),
}
INSIDE_NAMES = {  # format → the names inside the file, which follow the dataset's id
    "shp": lambda b: sorted(zipfile.ZipFile(io.BytesIO(b)).namelist()),
    "xlsx": lambda b: openpyxl.load_workbook(io.BytesIO(b), read_only=True).sheetnames,
    "gpkg": lambda b: gdal_layer_names(b, "gpkg"),
    "fgdb": lambda b: sorted(zipfile.ZipFile(io.BytesIO(b)).namelist())[0].split("/")[:1] + gdal_layer_names(b, "fgdb"),
}
NAMED_INSIDE = {"shp": [f"demo-events.{p}" for p in ("cpg", "dbf", "prj", "shp", "shx")], "xlsx": ["demo-events"],
                "gpkg": ["demo-events"], "fgdb": ["demo-events.gdb", "demo_events"]}
SKIPS_RECORDS_WITHOUT_A_POINT = {"ov2", "gpx", "fgb"}  # fgb: its spatial index cannot hold a null geometry


def test_every_registered_format_has_a_reader_here():
    assert set(READERS) == set(REGISTRY.names())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib's own N3 / JSON-LD parsers
@pytest.mark.parametrize("name", REGISTRY.names())
async def test_format_exports_end_to_end(client, worker, small_demo, name):
    fmt = REGISTRY.get(name)
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, name)), timeout=120)
    assert ready["status"] == "ready", ready
    status, body, headers = await download(client, ready["download_link"])
    assert status == 200
    assert headers["Content-Type"] == fmt.media_type
    assert ready["file_name"] == f"demo-events.{fmt.extension}"
    expected = ROWS - (NO_POINT if name in SKIPS_RECORDS_WITHOUT_A_POINT else 0)
    assert ready["records_count"] == expected
    assert ready.get("records_skipped", 0) == ROWS - expected
    assert READERS[name](body) == expected
    if name in INSIDE_NAMES:
        assert INSIDE_NAMES[name](body) == NAMED_INSIDE[name]


async def test_compressed_binary_format(client, worker, demo_dataset):
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "parquet", options={"compressed": True})))
    status, body, _ = await download(client, ready["download_link"])
    assert pq.read_table(io.BytesIO(gzip.decompress(body))).num_rows == demo.ROWS


async def test_formats_needing_what_the_dataset_lacks_are_refused_at_creation(settings, client, tmp_path):
    import pyarrow as pa

    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"name": ["a", "b"], "n": [1, 2]}), plain)
    await load_dataset(settings, plain, "plain")
    for name, missing in (("geojson", "geometry"), ("shp", "geometry"), ("ical", "date"), ("ov2", "geometry")):
        response = await client.post("/api/v1/exports", headers={"OSDI-API-Token": ADMIN_TOKEN}, json={
            "export_type": name, "_links": {"osdi:resource": {"href": "http://x/api/v2/catalog/datasets/plain"}}})
        body = await response.json()
        assert response.status == 400, (name, body)
        assert body["error_code"] == "format_not_applicable" and missing in body["message"]


async def test_writer_checks_run_at_creation(client, demo_dataset):
    response = await client.post("/api/v1/exports", headers={"OSDI-API-Token": ADMIN_TOKEN}, json={
        "export_type": "ov2", "options": {"epsg": 2154},
        "_links": {"osdi:resource": {"href": "http://x/api/v2/catalog/datasets/demo-events"}}})
    assert response.status == 400
    assert "epsg" in (await response.json())["message"]
    response = await client.post("/api/v1/exports", headers={"OSDI-API-Token": ADMIN_TOKEN}, json={
        "export_type": "ical", "options": {"summary_field": "nope"},
        "_links": {"osdi:resource": {"href": "http://x/api/v2/catalog/datasets/demo-events"}}})
    assert response.status == 400
    assert "nope" in (await response.json())["message"]
