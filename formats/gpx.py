"""GPX 1.1: one waypoint (<wpt>) a record. Position from geo_point_2d, else from geo_shape where
it is a point; records whose geometry is not a point (lines, polygons, multipoints: a waypoint's
centroid would be a place nobody marked), is empty, null or has a non-finite coordinate are
skipped and counted. <name> from `name_field` (default: the first text field); <desc> from
`description_field_list` as "field: value" lines; with `use_extension` every other field goes
into <extensions> as <ogr:field> text (dates ISO 8601, datetimes in the `timezone` option), the
elements GDAL's GPX driver writes and reads back as `ogr_field`. GPX is WGS 84 only: `epsg`
other than 4326 is refused.

The XML is built as text over whole batches with pyarrow.compute (no per-record Python: Fiona
one record at a time wrote ~10k waypoints/s, a third of GDAL's own speed). Text is escaped for
XML 1.0: & < > " as entities, a carriage return as &#13; (a parser would read a raw one as a
line feed), the control characters XML 1.0 cannot hold removed, as GDAL removes them.
The optional <metadata><bounds> GDAL writes is left out: it comes before the first waypoint,
so a stream cannot know it, and readers (GDAL's among them) do not need it."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats.base import Format, Option, Writer
from formats.geo import geometry_index, launder
from formats.json import buffer_of
from formats.kml import name_index
from formats.values import as_text, coordinate_strings, point_coords, xml_text

GEO_TYPES = ("geo_shape", "geo_point_2d")
WPT_FIELDS = ("ele", "time", "magvar", "geoidheight", "name", "cmt", "desc", "src", "link1_href", "link1_text",
              "link1_type", "sym", "type", "fix", "sat", "hdop", "vdop", "pdop", "ageofdgpsdata", "dgpsid")
GPX_NS = "http://www.topografix.com/GPX/1/1"
OGR_NS = "http://osgeo.org/gdal"


def header(extensions: bool) -> bytes:
    ogr = f' xmlns:ogr="{OGR_NS}"' if extensions else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" creator="exportd"'
            f' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"{ogr} xmlns="{GPX_NS}"'
            f' xsi:schemaLocation="{GPX_NS} {GPX_NS}/gpx.xsd">\n').encode()


def point_positions(column: pa.Array, field_type: str) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) of each record, NaN where the record has no finite point."""
    if field_type == "geo_point_2d":
        lon, lat = point_coords(column)
        return (lon.to_numpy(zero_copy_only=False).astype(np.float64),
                lat.to_numpy(zero_copy_only=False).astype(np.float64))
    geoms = shapely.from_wkb(column.to_numpy(zero_copy_only=False))
    geoms[shapely.get_type_id(geoms) != 0] = None  # get_x/get_y give NaN for None and empty points
    return shapely.get_x(geoms), shapely.get_y(geoms)


def element(tag: str, text: pa.Array, indent: str = "  ") -> pa.Array:
    """`<tag>text</tag>` lines, null where `text` is null."""
    return pc.binary_join_element_wise(f"{indent}<{tag}>", text, f"</{tag}>\n", "")


class GpxWriter(Writer):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.geo = geometry_index(self.fields, ("geo_point_2d", "geo_shape"))
        self.labels = self.column_names()
        self.name = name_index(self.fields, options["name_field"])
        index = {f.name: i for i, f in enumerate(self.fields)}
        self.described = [index[name] for name in options["description_field_list"] or () if name in index]
        self.extended = [i for i, f in enumerate(self.fields)
                         if options["use_extension"] and f.type not in GEO_TYPES and i != self.name]
        names = launder([self.labels[i] for i in self.extended], reserved=WPT_FIELDS)
        self.extension_tags = [f"ogr:{'_' if n[0].isdigit() else ''}{n}" for n in names]  # an XML name starts with no digit
        out.write(header(bool(self.extended)))

    def _text(self, batch: pa.RecordBatch, i: int) -> pa.Array:
        return as_text(batch.column(i), self.fields[i].type, self.options["timezone"])

    def _description(self, batch: pa.RecordBatch) -> pa.Array | None:
        """'label: value' lines of the described fields (null values left out); null when none."""
        if not self.described:
            return None
        # each line ends with a newline, the last one cut: joining with null_handling="skip"
        # gives an empty array (pyarrow 26) where every line of the batch is null
        lines = [pc.binary_join_element_wise(f"{self.labels[i]}: ", self._text(batch, i), "\n", "").fill_null("")
                 for i in self.described]
        text = pc.utf8_slice_codeunits(pc.binary_join_element_wise(*lines, ""), 0, -1)
        return element("desc", xml_text(pc.if_else(pc.equal(pc.binary_length(text), 0), pa.scalar(None, pa.string()), text)))

    def _extensions(self, batch: pa.RecordBatch) -> list[pa.Array | str]:
        if not self.extended:
            return []
        values = [element(tag, xml_text(self._text(batch, i)), "    ") for tag, i in zip(self.extension_tags, self.extended)]
        return ["  <extensions>\n", *values, "  </extensions>\n"]

    def write(self, batch: pa.RecordBatch) -> None:
        lon, lat = point_positions(batch.column(self.geo), self.fields[self.geo].type)
        keep = np.isfinite(lon) & np.isfinite(lat)
        if not keep.all():
            batch, lon, lat = batch.filter(pa.array(keep)), lon[keep], lat[keep]
        self.skipped += len(keep) - batch.num_rows
        if batch.num_rows == 0:
            return
        name = element("name", xml_text(self._text(batch, self.name))) if self.name is not None else None
        parts = ['<wpt lat="', coordinate_strings(lat), '" lon="', coordinate_strings(lon), '">\n', name,
                 self._description(batch), *self._extensions(batch), "</wpt>\n"]
        waypoints = pc.binary_join_element_wise(*(p for p in parts if p is not None), "", null_handling="skip")
        self.out.write(buffer_of(waypoints))

    def close(self) -> None:
        if self.skipped:
            self.warnings.append(f"{self.skipped} record(s) skipped: no point geometry for a waypoint")
        self.out.write(b"</gpx>\n")


FORMAT = Format(
    name="gpx",
    extension="gpx",
    media_type="application/gpx+xml",
    writer=GpxWriter,
    needs=frozenset({"geometry"}),
    options=(
        Option("name_field", "field", None, description="Field giving each waypoint's <name> (default: the first text field)."),
        Option("description_field_list", "fields", (), description="Fields written into <desc>, one 'field: value' line each."),
        Option("use_extension", bool, False, description="Write the other fields into <extensions>."),
    ),
    description="GPX waypoints (points only).",
)
