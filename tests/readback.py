"""Reading an export back as a user's tools would, for the fidelity tests: GDAL (through
pyogrio, a reader apart from the writers' own code) for the geographic formats, with each
layer's features, field types and CRS."""
from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyogrio
import pyogrio.raw
import shapely

from domain.fields import DATETIME, GEO_POINT, Field, fields_of, with_fields
from formats import REGISTRY

EXTENSIONS = {"geojson": "geojson", "shp": "zip", "fgb": "fgb", "gpkg": "gpkg", "kml": "kml", "fgdb": "gdb.zip"}


@dataclass
class Layer:
    name: str
    crs: str | None
    bounds: tuple[float, float, float, float] | None  # None: no geometry at all
    field_types: dict[str, str]  # GDAL's type name of each field (Integer64, Real, Date, DateTime, String, …)
    records: list[dict[str, Any]]  # each feature's fields, with "geometry" (shapely or None)


def export(format_name: str, table: pa.Table, options: dict[str, Any] | None = None, batch_size: int = 3):
    """Run the registry's writer over `table`; (bytes, writer)."""
    fmt = REGISTRY.get(format_name)
    fields = fields_of(table.schema)
    out = io.BytesIO()
    writer = fmt.open(out, table.schema, fields, fmt.parse_options(options or {}, fields))
    for batch in table.to_batches(max_chunksize=batch_size):
        writer.write(batch)
    writer.close()
    return out.getvalue(), writer


def gdal_layers(data: bytes, format_name: str, tmp_path: Path) -> dict[str, Layer]:
    """Every layer GDAL finds in the file, read whole."""
    path = tmp_path / f"readback.{EXTENSIONS[format_name]}"
    path.write_bytes(data)
    source = str(path)
    if format_name == "fgdb":  # the zip holds one NAME.gdb folder
        folders = {n.split("/")[0] for n in zipfile.ZipFile(path).namelist()}
        assert len(folders) == 1 and next(iter(folders)).endswith(".gdb"), folders
        source = f"/vsizip/{path}/{folders.pop()}"
    out = {}
    for name, _ in pyogrio.list_layers(source):
        info = pyogrio.read_info(source, layer=name)
        # not read_arrow: GDAL's FlatGeobuf Arrow stream gives wrong offsets after null geometries
        meta, _, geometry, values = pyogrio.raw.read(source, layer=name, datetime_as_string=True)
        kinds = {n: _kind(t, sub) for n, t, sub in zip(meta["fields"], meta["ogr_types"], meta["ogr_subtypes"])}
        records = []
        for i in range(info["features"]):
            record = {n: _plain(v[i], kinds[n]) for n, v in zip(meta["fields"], values)}
            record["geometry"] = None if geometry is None or geometry[i] is None else shapely.from_wkb(geometry[i])
            records.append(record)
        out[name] = Layer(name, info["crs"], info["total_bounds"] and tuple(info["total_bounds"]), kinds, records)
    return out


def _kind(ogr_type: str, subtype: str) -> str:
    """GDAL's field type as ogrinfo names it: Integer64, Real, String, Date, DateTime, Boolean…"""
    return subtype[4:] if subtype != "OFSTNone" else ogr_type[3:]


def _plain(value: Any, kind: str) -> Any:
    """A value as Python has it: integers and booleans that pyogrio read into a float column
    (because some are null) as GDAL holds them."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if kind in ("Integer", "Integer64", "Int16") and isinstance(value, float):
        return int(value)
    if kind == "Boolean" and value is not None:
        return bool(value)
    return value


def geo_table(columns: dict[str, pa.Array], types: dict[str, str] | None = None) -> pa.Table:
    """A table of `columns` with the fields' types read from Arrow, some given in `types`."""
    table = pa.table(columns)
    fields = [Field(f.name, (types or {}).get(f.name, f.type)) for f in fields_of(table.schema)]
    return table.replace_schema_metadata(with_fields(table.schema, fields).metadata)


__all__ = ["DATETIME", "GEO_POINT", "Layer", "export", "gdal_layers", "geo_table"]
