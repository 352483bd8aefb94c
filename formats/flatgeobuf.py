"""FlatGeobuf: one binary file, packed Hilbert R-tree index by default. Geometry from
geo_shape (any type, mixed allowed), else geo_point_2d; dates typed, datetimes as ISO 8601
text in the `timezone` option. GDAL's index cannot hold a null geometry, so with
`spatial_index` (default) records without geometry are skipped and counted; without it they
are kept. Streams through GDAL's Arrow writer (formats/ogr.py) into a temporary file, which
becomes `out` by a rename when `out` is a fresh storage partial, else is copied into it
(GdalWriter.copy_out)."""
from __future__ import annotations

import pyarrow as pa

from formats.base import Format, Option
from formats.gdal import GdalWriter, attribute, attribute_type, check_epsg, geometry_index, geometry_wkb

GEO_TYPES = ("geo_shape", "geo_point_2d")


class FlatGeobufWriter(GdalWriter):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.geo = geometry_index(self.fields)
        self.attributes = [i for i, f in enumerate(self.fields) if f.type not in GEO_TYPES]
        names = self.column_names()
        self.arrow_schema = pa.schema(
            [pa.field(names[i], attribute_type(self.fields[i].type)) for i in self.attributes]
            + [pa.field("geometry", pa.binary())]
        )
        self.layer = self.feed(
            "data.fgb", self.arrow_schema, driver="FlatGeobuf", geometry_name="geometry", crs=check_epsg(options["epsg"]),
            geometry_type="Point" if self.fields[self.geo].type == "geo_point_2d" else "Unknown",
            layer_options={"SPATIAL_INDEX": "YES" if options["spatial_index"] else "NO"},
        )

    def _write(self, batch: pa.RecordBatch) -> None:
        geometry = geometry_wkb(batch.column(self.geo), self.fields[self.geo].type, self.options["epsg"])
        columns = [attribute(batch.column(i), self.fields[i].type, self.options["timezone"]) for i in self.attributes]
        records = pa.record_batch(columns + [geometry], schema=self.arrow_schema)
        if self.options["spatial_index"] and geometry.null_count:
            records = records.filter(geometry.is_valid())
            self.skipped += batch.num_rows - records.num_rows
        if records.num_rows:
            self.layer.write(records)

    def _finish(self) -> None:
        if self.skipped:
            self.warnings.append(f"{self.skipped} record(s) without geometry skipped (spatial_index needs one)")
        self.copy_out(self.layer.path)


FORMAT = Format(
    name="fgb",
    extension="fgb",
    media_type="application/flatgeobuf",
    writer=FlatGeobufWriter,
    aliases=("flatgeobuf",),
    binary=True,
    needs=frozenset({"geometry"}),
    options=(
        Option("spatial_index", bool, True,
               description="Write the spatial index; records without geometry are then skipped."),
    ),
    description="FlatGeobuf, with a packed Hilbert R-tree spatial index.",
)
