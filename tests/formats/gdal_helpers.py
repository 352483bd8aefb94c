"""What the GDAL format tests share: the awkward table's records as a reader should give
them back, and writer runs that fail (bad geometry, full disk), to check temporary files go."""
from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import shapely

from domain.fields import fields_of
from formats import REGISTRY
from tests.formats.samples import awkward_table

GEO = ("geo_point_2d", "geo_shape")


def expected_records(table: pa.Table | None = None) -> list[dict[str, Any]]:
    """Each record with dates as ISO text and datetimes as ISO text in UTC; geometry apart."""
    rows = (table or awkward_table()).to_pylist()
    out = []
    for row in rows:
        record = {k: v for k, v in row.items() if k not in GEO}
        record["day"] = record["day"] and record["day"].isoformat()
        record["starts_at"] = record["starts_at"] and record["starts_at"].isoformat()
        record["shape"] = row["geo_shape"] and shapely.from_wkb(row["geo_shape"])
        record["point"] = row["geo_point_2d"] and (row["geo_point_2d"]["lon"], row["geo_point_2d"]["lat"])
        out.append(record)
    return out


def fail_halfway(format_name: str, table: pa.Table) -> None:
    """Write one batch, then have the next one blow up inside the writer."""
    fmt = REGISTRY.get(format_name)
    fields = fields_of(table.schema)
    writer = fmt.open(io.BytesIO(), table.schema, fields, fmt.parse_options({}, fields))
    writer.write(table.to_batches(max_chunksize=2)[0])
    broken = table.schema.field("geo_shape").type
    bad = table.slice(0, 2).set_column(table.schema.get_field_index("geo_shape"), "geo_shape",
                                       pa.array([b"junk", b"junk"], broken))
    bad = bad.set_column(table.schema.get_field_index("geo_point_2d"), "geo_point_2d",
                         pa.array([{"lon": 1.0, "lat": 2.0}, None], table.schema.field("geo_point_2d").type))
    writer.write(bad.to_batches()[0])


class FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError("disk full")


def write_to_full_disk(format_name: str, table: pa.Table) -> None:
    """Write the whole table into an `out` that refuses every byte (GDAL formats fail at close)."""
    fmt = REGISTRY.get(format_name)
    fields = fields_of(table.schema)
    writer = fmt.open(FullDisk(), table.schema, fields, fmt.parse_options({}, fields))
    for batch in table.to_batches(max_chunksize=4):
        writer.write(batch)
    writer.close()
