"""GPX: one waypoint (<wpt>) a record. Position from geo_point_2d, else from geo_shape where it
is a point; records whose geometry is not a point (lines, polygons, multipoints: a waypoint's
centroid would be a place nobody marked) or is null are skipped and counted. <name> from
`name_field` (default: the first text field); <desc> from `description_field_list` as
"field: value" lines; with `use_extension` every other field goes into <extensions> as text
(dates ISO 8601, datetimes in the `timezone` option). GPX is WGS 84 only: `epsg` other than
4326 is refused. GDAL's GPX layer has fixed fields that its Arrow path refuses to create, so
this writer goes through Fiona (per-record, ~10k records/s) into a temporary file."""
from __future__ import annotations

import fiona
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats.base import Format, Option
from formats.gdal import GdalWriter, geometries, geometry_index, launder
from formats.kml import check_wgs84, name_index
from formats.values import date_strings, datetime_strings

GEO_TYPES = ("geo_shape", "geo_point_2d")
WPT_FIELDS = ("ele", "time", "magvar", "geoidheight", "name", "cmt", "desc", "src", "link1_href", "link1_text",
              "link1_type", "sym", "type", "fix", "sat", "hdop", "vdop", "pdop", "ageofdgpsdata", "dgpsid")


def text(column: pa.Array, field_type: str, timezone: str) -> list[str | None]:
    """A column as text, as it reads in a GPX element."""
    if field_type == "datetime":
        column = datetime_strings(column, timezone)
    elif field_type == "date":
        column = date_strings(column)
    elif field_type == "boolean":
        column = pc.if_else(column, "true", "false")
    return column.cast(pa.string()).to_pylist()


class GpxWriter(GdalWriter):
    def __init__(self, out, schema, fields, options):
        check_wgs84(options)
        super().__init__(out, schema, fields, options)
        self.geo = geometry_index(self.fields, ("geo_point_2d", "geo_shape"))
        self.labels = self.column_names()
        self.name = name_index(self.fields, options["name_field"])
        index = {f.name: i for i, f in enumerate(self.fields)}
        self.described = [index[name] for name in options["description_field_list"] or () if name in index]
        self.extended = [i for i, f in enumerate(self.fields)
                         if options["use_extension"] and f.type not in GEO_TYPES and i != self.name]
        self.extension_names = launder([self.labels[i] for i in self.extended], reserved=WPT_FIELDS)
        properties = {"name": "str", "desc": "str", **dict.fromkeys(self.extension_names, "str")}
        self.path = self.tmp / "data.gpx"
        self.collection = fiona.open(
            self.path, "w", driver="GPX", layer="waypoints", crs="EPSG:4326",
            schema={"geometry": "Point", "properties": properties},
            GPX_USE_EXTENSIONS="YES" if self.extended else "NO",
        )

    def _descriptions(self, batch: pa.RecordBatch) -> list[str | None]:
        columns = [text(batch.column(i), self.fields[i].type, self.options["timezone"]) for i in self.described]
        labels = [self.labels[i] for i in self.described]
        lines = ("\n".join(f"{label}: {v}" for label, v in zip(labels, row) if v is not None) for row in zip(*columns))
        return [line or None for line in lines] if columns else [None] * batch.num_rows

    def _write(self, batch: pa.RecordBatch) -> None:
        geoms = geometries(batch.column(self.geo), self.fields[self.geo].type)
        points = np.flatnonzero(shapely.get_type_id(geoms) == 0)
        self.skipped += batch.num_rows - len(points)
        tz = self.options["timezone"]
        names = text(batch.column(self.name), self.fields[self.name].type, tz) if self.name is not None else None
        descriptions = self._descriptions(batch)
        extensions = [text(batch.column(i), self.fields[i].type, tz) for i in self.extended]
        xs, ys = shapely.get_x(geoms[points]), shapely.get_y(geoms[points])
        self.collection.writerecords(
            fiona.Feature(
                geometry=fiona.Geometry(type="Point", coordinates=(float(x), float(y))),
                properties={"name": names[row] if names else None, "desc": descriptions[row],
                            **{n: column[row] for n, column in zip(self.extension_names, extensions)}},
            )
            for row, x, y in zip(points.tolist(), xs, ys)
        )

    def _finish(self) -> None:
        self.collection.close()
        if self.skipped:
            self.warnings.append(f"{self.skipped} record(s) skipped: no point geometry for a waypoint")
        self.copy_out(self.path)

    def abort(self) -> None:
        if not self.collection.closed:
            self.collection.close()
        super().abort()


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
