"""KML: one Placemark a record, named by `name_field` (default: the first text field), every
other field in ExtendedData (dates and datetimes as ISO 8601 text, datetimes in the
`timezone` option). Geometry from geo_shape, else geo_point_2d; a record without geometry is
a Placemark without geometry. KML coordinates are WGS 84 by definition, so `epsg` other than
4326 is refused.

The Schema declares each field with the KML type its reader should see: `int` for whole
numbers that fit KML's 32 bits (GDAL's LIBKML reader clamps wider ones to 2147483647), else
`double` while they stay exact there (to 2^53), else `string`; `double`, `bool` (0/1) and
`string` (text, dates and datetimes: KML has no date type). The widths are known only once
every record is seen, so the placemarks go to a scratch file and the close writes the header
(with its Schema), copies them after it and ends the file.

The file is otherwise what GDAL's KML driver wrote for us before (layer `export`, Placemark ids, the red outline style GDAL gives lines and polygons,
booleans as 0/1, x,y[,z] coordinates, one <innerBoundaryIs> a hole, <MultiGeometry> for
multi-geometries and collections), but built as text over whole batches with pyarrow.compute
and shapely's vectorized functions, as formats/gpx.py does: GDAL's text generation made the
export slower than ogr2ogr itself. Where GDAL was wrong it is not copied: field names in
attributes are escaped, the Schema no longer declares the Name and Description fields no
placemark fills, values keep their leading spaces, a carriage return is written &#13;,
doubles are the shortest text that reads back as the same double (GDAL: %.15g; 1e-7 for
1e-07), coordinates are never in exponent form, and an empty point is no geometry (GDAL:
nan,nan)."""
from __future__ import annotations

import shutil
from functools import reduce
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats.base import Format, Option
from formats.binary import running_totals
from formats.geo import COPY_CHUNK, ScratchWriter, geometry_index
from formats.json import buffer_of
from formats.values import as_text, coordinate_strings, point_coords, xml_text

GEO_TYPES = ("geo_shape", "geo_point_2d")
LAYER = "export"
# The SimpleField type of each field type; an int's depends on its values (KmlWriter._schema_type).
SCHEMA_TYPES = {"text": "string", "double": "double", "boolean": "bool", "date": "string", "datetime": "string"}
INT32 = (-(2**31), 2**31 - 1)
EXACT_IN_DOUBLE = 2**53
STYLE = "\t<Style><LineStyle><color>ff0000ff</color></LineStyle><PolyStyle><fill>0</fill></PolyStyle></Style>\n"
STYLED = (1, 3, 5, 6)  # linestrings, polygons and their multi- forms get GDAL's style
FOOTER = b"</Folder>\n</Document></kml>\n"
SLICE_ROWS = 4096  # rows made into text at a time: whole 16k-row batches of polygons peaked 60 MiB higher
NO_TEXT = pa.scalar(None, pa.string())
PLAIN_TEXT = frozenset({"int", "double", "boolean", "date", "datetime"})  # written without characters to escape


def name_index(fields, wanted: str | None) -> int | None:
    """The field placemarks are named by: `wanted`, else the first text field, else none."""
    for i, f in enumerate(fields):
        if (f.name == wanted) if wanted else f.type == "text":
            return i
    return None


def join(*parts: pa.Array | str) -> pa.Array:
    """The parts concatenated row by row; null where any part is null."""
    return pc.binary_join_element_wise(*parts, "")


def coordinate_text(coords: np.ndarray) -> pa.Array:
    """'x,y' or 'x,y,z' for each row of an (n, 2) or (n, 3) array; z left out where NaN (a 2D
    geometry among 3D ones)."""
    parts = [coordinate_strings(coords[:, 0]), coordinate_strings(coords[:, 1])]
    if coords.shape[1] == 3:
        parts.append(pc.if_else(pa.array(np.isnan(coords[:, 2])), NO_TEXT, coordinate_strings(coords[:, 2])))
    return pc.binary_join_element_wise(*parts, ",", null_handling="skip")


def grouped(texts: pa.Array, owners: np.ndarray, n: int, separator: str = "") -> pa.Array:
    """For each of n owners, the texts it owns (owners: the sorted owner of each text) joined."""
    offsets = running_totals(np.bincount(owners, minlength=n)).astype(np.int32)
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), texts), separator)


def coordinates(geoms: np.ndarray, z: bool) -> pa.Array:
    """The <coordinates> text of each point, linestring or linear ring."""
    coords, owners = shapely.get_coordinates(geoms, include_z=z, return_index=True)
    return grouped(coordinate_text(coords), owners, len(geoms), " ")


def point_elements(text: pa.Array) -> pa.Array:
    return join("<Point><coordinates>", text, "</coordinates></Point>")


def points(geoms: np.ndarray, z: bool) -> pa.Array:
    """<Point>, null for an empty point: GDAL's KML reader reads <coordinates></coordinates> as 0,0."""
    return pc.if_else(pa.array(shapely.is_empty(geoms)), NO_TEXT, point_elements(coordinates(geoms, z)))


def linestrings(geoms: np.ndarray, z: bool) -> pa.Array:
    return join("<LineString><coordinates>", coordinates(geoms, z), "</coordinates></LineString>")


def polygons(geoms: np.ndarray, z: bool) -> pa.Array:
    """<Polygon>: the first ring the outer boundary, each other one an inner boundary."""
    rings, owners = shapely.get_rings(geoms, return_index=True)
    outer = np.ones(len(rings), bool)
    outer[1:] = owners[1:] != owners[:-1]
    boundary = pc.if_else(pa.array(outer), "outerBoundaryIs", "innerBoundaryIs")
    text = join("<", boundary, "><LinearRing><coordinates>", coordinates(rings, z), "</coordinates></LinearRing></", boundary, ">")
    return join("<Polygon>", grouped(text, owners, len(geoms)), "</Polygon>")


def collections(geoms: np.ndarray, z: bool) -> pa.Array:
    """<MultiGeometry> of the parts of multi-geometries and collections (nested ones nest)."""
    parts, owners = shapely.get_parts(geoms, return_index=True)
    return join("<MultiGeometry>", grouped(shape_elements(parts, z).fill_null(""), owners, len(geoms)), "</MultiGeometry>")


RENDERERS: tuple[tuple[tuple[int, ...], Callable[[np.ndarray, bool], pa.Array]], ...] = (
    ((0,), points), ((1,), linestrings), ((3,), polygons), ((4, 5, 6, 7), collections))


def shape_elements(geoms: np.ndarray, z: bool) -> pa.Array:
    """The KML geometry element of each shapely geometry, of any types mixed; null for None.
    Each type is rendered for all its geometries at once, then put back in order."""
    types = shapely.get_type_id(geoms)
    texts, rows = [], []
    for kinds, render in RENDERERS:
        where = np.flatnonzero(np.isin(types, kinds))
        if len(where):
            texts.append(render(geoms[where], z))
            rows.append(where)
    if len(texts) == 1 and len(rows[0]) == len(geoms):
        return texts[0]
    rendered = sum(map(len, rows))
    position = np.full(len(geoms), rendered)  # a row of no type (None) reads the null after the last text
    if rows:
        position[np.concatenate(rows)] = np.arange(rendered)
    return pa.concat_arrays([*texts, pa.nulls(1, pa.string())]).take(pa.array(position))


def value_text(column: pa.Array, field_type: str, tz: str) -> pa.Array:
    """A field's values as GDAL wrote them (booleans 0/1, dates ISO 8601), as XML text."""
    if field_type == "boolean":
        column = column.cast(pa.int8())
    text = as_text(column, field_type, tz)
    return text if field_type in PLAIN_TEXT else xml_text(text)


def escaped(names: list[str]) -> list[str]:
    return xml_text(pa.array(names, pa.string())).to_pylist()


class KmlWriter(ScratchWriter):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.geo = geometry_index(self.fields)
        self.name = name_index(self.fields, options["name_field"])
        self.attributes = [i for i, f in enumerate(self.fields) if f.type not in GEO_TYPES and i != self.name]
        self.names = escaped([self.column_names()[i] for i in self.attributes])
        self.data_tags = [f'\t\t<SimpleData name="{name}">' for name in self.names]
        self.written = 0
        self.placemarks = self.tmp / "placemarks"
        self.placemarks.write_bytes(b"")
        self.ranges: dict[int, tuple[int, int]] = {}  # each int field's least and greatest value so far

    def _schema_type(self, i: int) -> str:
        if self.fields[i].type != "int":
            return SCHEMA_TYPES[self.fields[i].type]
        low, high = self.ranges.get(i, (0, 0))
        if INT32[0] <= low and high <= INT32[1]:
            return "int"
        return "double" if -EXACT_IN_DOUBLE <= low and high <= EXACT_IN_DOUBLE else "string"

    def _header(self) -> bytes:
        declared = "".join(f'\t<SimpleField name="{name}" type="{self._schema_type(i)}"></SimpleField>\n'
                           for name, i in zip(self.names, self.attributes))
        return (f'<?xml version="1.0" encoding="utf-8" ?>\n<kml xmlns="http://www.opengis.net/kml/2.2">\n'
                f'<Document id="root_doc">\n<Schema name="{LAYER}" id="{LAYER}">\n{declared}</Schema>\n'
                f'<Folder><name>{LAYER}</name>\n').encode()

    def _widen(self, batch: pa.RecordBatch) -> None:
        for i in self.attributes:
            if self.fields[i].type == "int" and batch.column(i).null_count < len(batch):
                extremes = pc.min_max(batch.column(i))
                low, high = extremes["min"].as_py(), extremes["max"].as_py()
                if i in self.ranges:
                    low, high = min(low, self.ranges[i][0]), max(high, self.ranges[i][1])
                self.ranges[i] = (low, high)

    def _text(self, batch: pa.RecordBatch, i: int) -> pa.Array:
        return value_text(batch.column(i), self.fields[i].type, self.options["timezone"])

    def _geometry(self, column: pa.Array) -> tuple[pa.Array, pa.Array | None]:
        """The geometry element of each record (null where it has none) and GDAL's style
        line for it (null where it has none)."""
        if self.fields[self.geo].type == "geo_point_2d":
            lon, lat = point_coords(column)
            coords = np.column_stack([lon.to_numpy(zero_copy_only=False), lat.to_numpy(zero_copy_only=False)])
            return pc.if_else(column.is_valid(), point_elements(coordinate_text(coords)), NO_TEXT), None
        geoms = shapely.from_wkb(column.to_numpy(zero_copy_only=False))
        style = pc.if_else(pa.array(np.isin(shapely.get_type_id(geoms), STYLED)), STYLE, NO_TEXT)
        return shape_elements(geoms, bool(shapely.has_z(geoms).any())), style

    def _extended_data(self, batch: pa.RecordBatch) -> pa.Array | None:
        """The ExtendedData of each record, null where every attribute is null."""
        if not self.attributes:
            return None
        lines = [join(tag, self._text(batch, i), "</SimpleData>\n").fill_null("") for tag, i in zip(self.data_tags, self.attributes)]
        filled = reduce(pc.or_, [batch.column(i).is_valid() for i in self.attributes])
        text = join(f'\t<ExtendedData><SchemaData schemaUrl="#{LAYER}">\n', *lines, "\t</SchemaData></ExtendedData>\n")
        return pc.if_else(filled, text, NO_TEXT)

    def _write(self, batch: pa.RecordBatch) -> None:
        self._widen(batch)
        with open(self.placemarks, "ab") as f:
            for start in range(0, batch.num_rows, SLICE_ROWS):
                f.write(self._placemarks(batch.slice(start, SLICE_ROWS)))

    def _placemarks(self, batch: pa.RecordBatch):
        ids = pa.array(np.arange(self.written + 1, self.written + batch.num_rows + 1)).cast(pa.string())
        self.written += batch.num_rows
        geometry, style = self._geometry(batch.column(self.geo))
        name = join("\t<name>", self._text(batch, self.name), "</name>\n") if self.name is not None else None
        parts = [f'  <Placemark id="{LAYER}.', ids, '">\n', name, style, self._extended_data(batch),
                 join("      ", geometry, "\n"), "  </Placemark>\n"]
        placemarks = pc.binary_join_element_wise(*(p for p in parts if p is not None), "", null_handling="skip")
        return buffer_of(placemarks)

    def _finish(self) -> None:
        self.out.write(self._header())
        with open(self.placemarks, "rb") as f:
            shutil.copyfileobj(f, self.out, COPY_CHUNK)
        self.out.write(FOOTER)


FORMAT = Format(
    name="kml",
    extension="kml",
    media_type="application/vnd.google-earth.kml+xml",
    writer=KmlWriter,
    needs=frozenset({"geometry"}),
    options=(
        Option("name_field", "field", None, description="Field naming the placemarks (default: the first text field)."),
    ),
    description="KML placemarks, fields as ExtendedData.",
)
