"""CSV as OpenDataSoft writes it: `;` by default, a UTF-8 BOM, RFC 4180 quoting (CRLF line
ends, quotes doubled, fields with the delimiter, quotes or line breaks quoted). Streams through
pyarrow's CSV writer after rendering datetimes, dates and geometry as text, column by column."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from formats.base import Format, Option, Writer
from formats.values import date_strings, datetime_strings, point_lat_lon_strings, shape_geojson_strings

BOM = b"\xef\xbb\xbf"
PLAIN_TYPES = frozenset({"text", "int", "double", "boolean"})  # written by pyarrow as they are
DELIMITERS = {";": ";", ",": ",", "\t": "\t", "tab": "\t", "|": "|"}


def _is_list(arrow_type: pa.DataType) -> bool:
    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)


class CsvWriter(Writer):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        delimiter = DELIMITERS[options["delimiter"]]
        self.text_schema = pa.schema([
            pa.field(name, column.type if f.type in PLAIN_TYPES and not _is_list(column.type) else pa.string())
            for name, f, column in zip(self.column_names(), self.fields, schema)
        ])
        if options["with_bom"]:
            out.write(BOM)
        quoting = "all_valid" if options["quote_all"] else "needed"
        self._csv = pacsv.CSVWriter(
            out,
            self.text_schema,
            write_options=pacsv.WriteOptions(delimiter=delimiter, eol="\r\n", quoting_style=quoting, quoting_header="needed"),
        )

    def _text(self, column: pa.Array, field_type: str) -> pa.Array:
        if field_type == "datetime":
            return datetime_strings(column, self.options["timezone"])
        if field_type == "date":
            return date_strings(column)
        if field_type == "geo_point_2d":
            return point_lat_lon_strings(column)
        if field_type == "geo_shape":
            return shape_geojson_strings(column)
        if _is_list(column.type):
            return pc.binary_join(column.cast(pa.list_(pa.string())), self.options["list_separator"])
        return column

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [self._text(batch.column(i), f.type) for i, f in enumerate(self.fields)]
        self._csv.write_batch(pa.record_batch(columns, schema=self.text_schema))

    def close(self) -> None:
        self._csv.close()


FORMAT = Format(
    name="csv",
    extension="csv",
    media_type="text/csv; charset=utf-8",
    writer=CsvWriter,
    options=(
        Option("delimiter", "choice", ";", choices=tuple(DELIMITERS), description="Column separator."),
        Option("quote_all", bool, False, description="Quote every non-null value, not only those that need it."),
        Option("with_bom", bool, True, description="Start the file with a UTF-8 byte order mark (for Excel)."),
        Option("list_separator", str, ",", description="Separator between the values of a multivalued field."),
    ),
    description="Comma- (or semicolon-) separated values, RFC 4180.",
)
