"""KML: one Placemark a record, named by `name_field` (default: the first text field), every
other field in ExtendedData (dates and datetimes as ISO 8601 text, datetimes in the
`timezone` option). Geometry from geo_shape, else geo_point_2d; a record without geometry is
a Placemark without geometry. KML coordinates are WGS 84 by definition, so `epsg` other than
4326 is refused. Streams through GDAL's Arrow writer (formats/ogr.py, GDAL's KML driver) into
a temporary file copied into `out`."""
from __future__ import annotations

import pyarrow as pa

from formats.base import WGS84, Format, Option, OptionError
from formats.gdal import GdalWriter, attribute, attribute_type, geometry_index, geometry_wkb

GEO_TYPES = ("geo_shape", "geo_point_2d")
NO_DESCRIPTION = "\x00none"  # a DescriptionField no column has: every field stays in ExtendedData


def check_wgs84(options) -> None:
    if options["epsg"] != WGS84:
        raise OptionError(f"option 'epsg': coordinates of this format are WGS 84 (4326), not {options['epsg']}")


def name_index(fields, wanted: str | None) -> int | None:
    """The field placemarks are named by: `wanted`, else the first text field, else none."""
    for i, f in enumerate(fields):
        if (f.name == wanted) if wanted else f.type == "text":
            return i
    return None


class KmlWriter(GdalWriter):
    def __init__(self, out, schema, fields, options):
        check_wgs84(options)
        super().__init__(out, schema, fields, options)
        self.geo = geometry_index(self.fields)
        self.attributes = [i for i, f in enumerate(self.fields) if f.type not in GEO_TYPES]
        names = self.column_names()
        named = name_index(self.fields, options["name_field"])
        self.arrow_schema = pa.schema(
            [pa.field(names[i], attribute_type(self.fields[i].type, True)) for i in self.attributes]
            + [pa.field("geometry", pa.binary())]
        )
        self.layer = self.feed(
            "data.kml", self.arrow_schema, driver="KML", layer="export", geometry_name="geometry",
            geometry_type="Unknown", crs="EPSG:4326",
            dataset_options={"NameField": names[named] if named is not None else NO_DESCRIPTION,
                             "DescriptionField": NO_DESCRIPTION},
        )

    def _write(self, batch: pa.RecordBatch) -> None:
        geometry = geometry_wkb(batch.column(self.geo), self.fields[self.geo].type)
        columns = [attribute(batch.column(i), self.fields[i].type, self.options["timezone"], True) for i in self.attributes]
        self.layer.write(pa.record_batch(columns + [geometry], schema=self.arrow_schema))

    def _finish(self) -> None:
        self.copy_out(self.layer.path)


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
