"""Formats GDAL writes whole, from an Arrow stream (pyogrio's write_arrow): GeoPackage and
File Geodatabase. Their files are databases (SQLite pages, FileGDB tables and indexes) that
only GDAL's drivers lay out, so nothing here writes bytes of them: each batch becomes a
layer's Arrow columns (attributes, then the geometry as WKB in the `epsg` option's CRS), and
the driver writes them into a scratch directory; at close the file (or the zipped folder)
becomes `out`.

The layer is named after the dataset (the `stem` Format.open passes), its fields after the
fields (labels with `use_labels`). Datetimes are written as instants in UTC, as both formats
keep them; dates as dates; a record without a geometry keeps a null
one."""
from __future__ import annotations

from pathlib import Path
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats.base import WGS84
from formats.geo import ScratchWriter, check_epsg, geometry_index, point_wkb, point_xy, reproject, wkb
from formats.names import file_stem
from formats.wkb import walk

GEO_TYPES = ("geo_shape", "geo_point_2d")
GEOMETRY = "geometry"  # the Arrow column handed to GDAL; each driver names its own (geom, SHAPE)


class GdalLayerWriter(ScratchWriter):
    """Layers written by the GDAL driver `DRIVER` into `self.target` (under the scratch
    directory): `layer_batch` makes a batch's layer columns, `write_layer` has GDAL write a
    stream of them as a layer. Subclasses say where (`_target`), and how the result becomes
    `out` (`_finish`)."""

    DRIVER = ""
    LAYER_OPTIONS: dict[str, str] = {}

    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.epsg = options["epsg"]
        check_epsg(self.epsg)
        self.geo = geometry_index(self.fields)
        self.attributes = [i for i, f in enumerate(self.fields) if f.type not in GEO_TYPES]
        names = self.column_names()
        names = dict(zip(self.attributes, self.field_names([names[i] for i in self.attributes])))
        # both formats keep instants in UTC: handed to GDAL so, it need not read a zone's name
        types = [pa.timestamp("us", tz="UTC") if self.fields[i].type == "datetime" else schema.field(i).type
                 for i in self.attributes]
        self.layer_schema = pa.schema([*(pa.field(names[i], t) for i, t in zip(self.attributes, types)),
                                       pa.field(GEOMETRY, pa.binary())])
        self.layer = file_stem(options.get("stem"))
        self.target = self._target(self.tmp, self.layer)

    def _target(self, tmp: Path, layer: str) -> Path:
        raise NotImplementedError

    def field_names(self, names: list[str]) -> list[str]:
        """The layer's field names for these column names (as they are, unless the format
        restricts them)."""
        return names

    def layer_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch as the layer's columns: attributes, then the geometry as WKB."""
        columns = [batch.column(i).cast(t) for i, t in zip(self.attributes, self.layer_schema.types)]
        return pa.record_batch([*columns, self._wkb(batch.column(self.geo))], schema=self.layer_schema)

    def write_layer(self, reader: pa.RecordBatchReader, layer: str, geometry_type: str, append: bool = False) -> None:
        """GDAL writes the stream `reader` as the layer `layer` of `self.target`."""
        import pyogrio  # GDAL, loaded by the first export in such a format

        pyogrio.write_arrow(reader, str(self.target), layer=layer, driver=self.DRIVER, geometry_name=GEOMETRY,
                            geometry_type=geometry_type, crs=f"EPSG:{self.epsg}", encoding="UTF-8", append=append,
                            layer_options=dict(self.LAYER_OPTIONS))

    def _wkb(self, column: pa.Array) -> pa.Array:
        """Each record's geometry as WKB in the CRS of `epsg`; null where it has none (or it
        is empty, or PROJ cannot move it)."""
        if self.fields[self.geo].type == "geo_shape" and self.epsg == WGS84:
            column = column.cast(pa.binary())
            # GDAL would store bytes it cannot read as they are: shapely reads (so checks, and
            # rewrites) the values formats/wkb.py's walk does not vouch for
            redo = column.is_valid().to_numpy(zero_copy_only=False) & ~walk(column).vouched
            if not redo.any():
                return column
            mask = pa.array(redo)
            return pc.replace_with_mask(column, mask, wkb(shapely.from_wkb(column.filter(mask).to_numpy(zero_copy_only=False))))
        if self.fields[self.geo].type == "geo_point_2d":
            return point_wkb(*point_xy(column, self.epsg))
        geoms = reproject(shapely.from_wkb(column.to_numpy(zero_copy_only=False)), self.epsg)
        geoms = np.where(shapely.is_empty(geoms), None, geoms)
        return wkb(geoms)
