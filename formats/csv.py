"""CSV as OpenDataSoft writes it: `;` by default, a UTF-8 BOM, RFC 4180 quoting (CRLF line
ends, quotes doubled, fields with the delimiter, quotes or line breaks quoted). Streams through
pyarrow's CSV writer after rendering datetimes, dates and geometry as text, column by column,
two batches at a time on worker threads."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv

from formats.base import Format, Option, Writer
from formats.parallel import OrderedRendering
from formats.values import as_text

BOM = b"\xef\xbb\xbf"
PLAIN_TYPES = frozenset({"text", "int", "double", "boolean"})  # written by pyarrow as they are
DELIMITERS = {";": ";", ",": ",", "\t": "\t", "tab": "\t", "|": "|"}


def _is_list(arrow_type: pa.DataType) -> bool:
    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)


class CsvWriter(Writer):
    """The header at open; each batch rendered on a worker thread (formats.parallel) by pyarrow's
    CSV writer, without a header, and written in order."""

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
        self.write_options = pacsv.WriteOptions(delimiter=delimiter, eol="\r\n", quoting_style=quoting,
                                                quoting_header="needed", include_header=False)
        pacsv.write_csv(self.text_schema.empty_table(), out, pacsv.WriteOptions(
            delimiter=delimiter, eol="\r\n", quoting_style=quoting, quoting_header="needed"))
        self.rendering = OrderedRendering(self.render, out.write)

    def render(self, batch: pa.RecordBatch) -> pa.Buffer:
        columns = [
            column if out.type == column.type else as_text(column, f.type, self.options["timezone"], self.options["list_separator"])
            for column, f, out in zip(batch.columns, self.fields, self.text_schema)
        ]
        sink = pa.BufferOutputStream()
        pacsv.write_csv(pa.record_batch(columns, schema=self.text_schema), sink, self.write_options)
        return sink.getvalue()

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.rendering.submit(batch)

    def close(self) -> None:
        self.rendering.finish()

    def abort(self) -> None:
        self.rendering.abort()


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
