"""iCalendar (RFC 5545): one VCALENDAR with one VEVENT per record that has a start.

The text is built column by column with pyarrow.compute (the icalendar object model costs
~300 µs an event, see MEASUREMENTS.md); icalendar only reads our files back in the tests.

- DTSTART: `dtstart_field`, by default the first datetime field, or the first date field
  when there is no datetime: a calendar app shows an event at its time, and a dataset's date
  is most often the day of its datetimes. A date gives an all-day event (VALUE=DATE); a
  record without a start is skipped and counted in `skipped`.
- DTEND: `dtend_field`, by default the next field of the start's type after it (a datetime
  start never ends at a date by default). It is converted to the start's value type: an end date is taken as the event's last day, so DTEND
  is the day after it (DTEND is exclusive); an all-day event without an end ends the next day.
  An end not after the start is left out, with a warning.
- Datetimes are always written in UTC with `Z`: TZID would need a VTIMEZONE of our own. The
  `timezone` option becomes X-WR-TIMEZONE (a display hint most clients follow) and the zone in
  which an end datetime falls on a day, or an end date ends, when value types are mixed.
- SUMMARY: `summary_field`, by default the first text field (not the description's).
  DESCRIPTION: `description_field`, by default a text field named like one (description,
  descriptif, details, summary…, in its name or label). LOCATION: `location_field` (text), or
  GEO when it names a geo_point_2d; by default a text field named like an address (address,
  adresse, location, lieu, venue, place, street, city, ville, commune…). GEO comes from the
  first geo_point_2d field, else from the centre of the first geo_shape's geometries (a point
  within the shape, shapely's point_on_surface).
- UID: the SHA-1 of the record's values (every field, in order) + `@exportd`, so the same
  record gets the same UID in every export, whatever the batch, order, filter or options.
  Identical records share a UID: they describe the same event.
- DTSTAMP: the time the export started, the same for every event.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import shapely

from domain.fields import DATE_TYPES, Field
from formats.base import Format, Option, OptionError, Writer
from formats.json import buffer_of
from formats.parallel import OrderedRendering
from formats.values import as_text, date_strings, point_coords

CRLF = "\r\n"
PRODID = "-//exportd//exportd iCalendar export//EN"
UID_SUFFIX = "@exportd"
# Up to 74 octets ending on a whole UTF-8 character; with the leading space of a continuation
# line that makes 75. RE2 reads binary columns byte by byte (Latin-1), hence the octet classes.
FOLD_CHUNK = (
    rb"[\x00-\xff]{0,73}[\x00-\x7f]|[\x00-\xff]{0,72}[\xc0-\xdf][\x80-\xbf]"
    rb"|[\x00-\xff]{0,71}[\xe0-\xef][\x80-\xbf]{2}|[\x00-\xff]{0,70}[\xf0-\xf7][\x80-\xbf]{3}"
)
CONTROLS = "[\x00-\x08\x0b-\x1f\x7f]"  # not allowed in TEXT; tab and newline are handled apart


def escape_text(arr: pa.Array) -> pa.Array:
    """RFC 5545 TEXT: backslash, semicolon and comma escaped, line breaks as `\\n`."""
    arr = pc.replace_substring(pc.replace_substring(arr, "\r\n", "\n"), "\r", "\n")
    arr = pc.replace_substring_regex(arr, CONTROLS, "")
    for char, escaped in (("\\", "\\\\"), (";", "\\;"), (",", "\\,"), ("\n", "\\n")):
        arr = pc.replace_substring(arr, char, escaped)
    return arr


def fold(lines: pa.Array) -> pa.Array:
    """Content lines folded at 75 octets (CRLF + space), never inside a UTF-8 character."""
    long = pc.greater(pc.binary_length(lines), 75)
    if not pc.any(long).as_py():
        return lines
    chunked = pc.replace_substring_regex(lines.cast(pa.binary()), FOLD_CHUNK, rb"\0" + b"\r\n ")
    folded = pc.utf8_slice_codeunits(chunked.cast(pa.string()), 0, -3)  # the last CRLF + space
    return pc.if_else(long, folded, lines)


def content_lines(prefix: str, values: pa.Array) -> pa.Array:
    """`prefix` + value for each value, folded; null where the value is null."""
    return fold(pc.binary_join_element_wise(prefix, values, ""))


def utc_stamps(arr: pa.Array) -> pa.Array:
    """Timestamps as UTC DATE-TIME: 20240621T183000Z (fractions of a second dropped)."""
    naive = arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    text = pc.floor_temporal(naive, unit="second").cast(pa.timestamp("s")).cast(pa.string())
    for char, replacement in (("-", ""), (":", ""), (" ", "T")):
        text = pc.replace_substring(text, char, replacement)
    return pc.binary_join_element_wise(text, "Z", "")


def day_stamps(days: pa.Array) -> pa.Array:
    """Dates as DATE: 20240621."""
    return pc.replace_substring(date_strings(days), "-", "")


def add_days(days: pa.Array, n: int) -> pa.Array:
    return pc.add(days.cast(pa.int32()), pa.scalar(n, pa.int32())).cast(pa.date32())


def local_days(arr: pa.Array, tz: str) -> pa.Array:
    """The day, in `tz`, on which each timestamp falls."""
    return pc.local_timestamp(arr.cast(pa.timestamp("us", tz=tz))).cast(pa.date32())


def decimal_strings(arr: pa.Array) -> pa.Array:
    """Doubles as FLOAT (no exponent, which pyarrow writes for tiny values)."""
    text = arr.cast(pa.string())
    exponent = pc.match_substring(text, "e")
    if not pc.any(exponent).as_py():
        return text
    values = arr.to_pylist()
    fixed = [None if v is None else format(v, "f").rstrip("0").rstrip(".") or "0" for v in values]
    return pc.if_else(exponent, pa.array(fixed, pa.string()), text)




def canonical_bytes(column: pa.Array, field_type: str) -> pa.Array:
    """A cheap, exact binary rendering of a column, only for hashing."""
    if field_type == "datetime":
        column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    elif field_type == "date":
        column = column.cast(pa.date32()).cast(pa.int32())
    elif field_type == "geo_point_2d":
        lon, lat = point_coords(column)
        column = pc.binary_join_element_wise(lon.cast(pa.string()), lat.cast(pa.string()), ",")
    elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        column = pc.binary_join(column.cast(pa.list_(pa.string())), "\x1f")
    return column.cast(pa.string()).cast(pa.binary()) if not pa.types.is_binary(column.type) else column


def record_uids(batch: pa.RecordBatch, fields: list[Field]) -> pa.Array:
    """SHA-1 of every value of each record (null distinct from empty) + the UID suffix."""
    parts = [canonical_bytes(batch.column(i), f.type) for i, f in enumerate(fields)]
    joined = pc.binary_join_element_wise(*parts, b"\x1e", null_handling="replace", null_replacement=b"\x00")
    return pa.array([hashlib.sha1(v).hexdigest() + UID_SUFFIX for v in joined.to_pylist()], pa.string())


def first(fields: list[Field], types: frozenset[str], after: int = -1) -> int | None:
    return next((i for i, f in enumerate(fields) if f.type in types and i > after), None)


# Words naming an address or a description, most telling first (English and French, as the
# platform's datasets are).
ADDRESS_WORDS = ("address", "adresse", "location", "lieu", "venue", "place", "site", "street", "rue", "voie",
                 "city", "ville", "commune", "town", "municipality")
DESCRIPTION_WORDS = ("description", "descriptif", "details", "detail", "summary", "resume", "abstract", "notes")


def _words(field: Field) -> set[str]:
    text = f"{field.name} {field.label}".lower()
    return set(re.split(r"[^a-z0-9À-ɏ]+", text)) - {""}


def named_like(fields: list[Field], words: tuple[str, ...], skip: set[int | None] = frozenset()) -> int | None:
    """The first text field whose name or label holds the most telling of `words`."""
    for word in words:
        for i, f in enumerate(fields):
            if f.type == "text" and i not in skip and word in _words(f):
                return i
    return None


class IcalWriter(Writer):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.tz: str = options["timezone"]
        datetimes = first(self.fields, frozenset({"datetime"}))
        self.start = self._pick("dtstart_field", first(self.fields, DATE_TYPES) if datetimes is None else datetimes,
                                DATE_TYPES)
        if self.start is None:
            raise OptionError("format 'ical' needs a date or datetime field for DTSTART")
        same_type = frozenset({self.fields[self.start].type})
        self.end = self._pick("dtend_field", first(self.fields, same_type, after=self.start), DATE_TYPES)
        self.all_day = self.fields[self.start].type == "date"
        self.description = self._pick("description_field", named_like(self.fields, DESCRIPTION_WORDS))
        texts = [i for i, f in enumerate(self.fields) if f.type == "text" and i != self.description]
        self.summary = self._pick("summary_field", texts[0] if texts else None)
        location = self._pick("location_field", named_like(self.fields, ADDRESS_WORDS, {self.summary, self.description}))
        located_by_point = location is not None and self.fields[location].type == "geo_point_2d"
        self.location = None if located_by_point else location
        self.geo = location if located_by_point else first(self.fields, frozenset({"geo_point_2d"}))
        self.shape = None if self.geo is not None else first(self.fields, frozenset({"geo_shape"}))
        self.dtstamp = "DTSTAMP:" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.ends_dropped: list[int] = []  # a batch's events whose end was not after their start
        self.rendering = OrderedRendering(self.render, out.write)
        header = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN",
                  "METHOD:PUBLISH", f"X-WR-TIMEZONE:{self.tz}", ""]
        out.write(CRLF.join(header).encode())

    def _pick(self, option: str, default: int | None, types: frozenset[str] | None = None) -> int | None:
        name = self.options.get(option)
        if name is None:
            return default
        index = next((i for i, f in enumerate(self.fields) if f.name == name), None)
        if index is None:
            raise OptionError(f"option {option!r} names unknown field {name!r}")
        if types and self.fields[index].type not in types:
            raise OptionError(f"option {option!r} must name a date or datetime field, not {name!r}")
        return index

    def _dates(self, batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
        """DTSTART and DTEND content lines; DTEND null where the event has none."""
        start = batch.column(self.start)
        end = None if self.end is None else batch.column(self.end)
        end_type = None if self.end is None else self.fields[self.end].type
        if self.all_day:
            if end is not None:  # the last day of the event, exclusive: the day after
                end = add_days(end if end_type == "date" else local_days(end, self.tz), 1)
            return (content_lines("DTSTART;VALUE=DATE:", day_stamps(start)),
                    content_lines("DTEND;VALUE=DATE:", day_stamps(self._valid_end(start, end, add_days(start, 1)))))
        if end is not None and end_type == "date":  # ends as that day ends, in the export's zone
            midnight = add_days(end, 1).cast(pa.timestamp("s"))
            end = pc.assume_timezone(midnight, self.tz, ambiguous="earliest", nonexistent="earliest")
        start_line = content_lines("DTSTART:", utc_stamps(start))
        if end is None:
            return start_line, pa.nulls(len(start), pa.string())
        return start_line, content_lines("DTEND:", utc_stamps(self._valid_end(start, end.cast(start.type), None)))

    def _valid_end(self, start: pa.Array, end: pa.Array | None, fallback: pa.Array | None) -> pa.Array | None:
        """`end` where it is after `start`, else `fallback` (or null); counts the ends dropped."""
        if end is None:
            return fallback
        after = pc.greater(end, start)
        self.ends_dropped.append(pc.sum(pc.invert(after)).as_py() or 0)  # list.append: safe across threads
        kept = pc.if_else(after, end, pa.scalar(None, end.type))
        return kept if fallback is None else pc.coalesce(kept, fallback)

    def _text_line(self, name: str, index: int | None, batch: pa.RecordBatch) -> pa.Array | None:
        if index is None:
            return None
        return content_lines(f"{name}:", escape_text(as_text(batch.column(index), self.fields[index].type, self.tz)))

    def _geo_line(self, batch: pa.RecordBatch) -> pa.Array | None:
        if self.geo is not None:
            lon, lat = point_coords(batch.column(self.geo))
        elif self.shape is not None:
            centres = shapely.point_on_surface(shapely.from_wkb(batch.column(self.shape).to_numpy(zero_copy_only=False)))
            lon, lat = pa.array(shapely.get_x(centres)), pa.array(shapely.get_y(centres))  # NaN where none
        else:
            return None
        finite = pc.and_(pc.is_finite(lon), pc.is_finite(lat))
        line = pc.binary_join_element_wise("GEO:", decimal_strings(lat), ";", decimal_strings(lon), "")
        return pc.if_else(finite, line, pa.scalar(None, pa.string()))

    def write(self, batch: pa.RecordBatch) -> None:
        dated = batch.filter(batch.column(self.start).is_valid())
        self.skipped += batch.num_rows - dated.num_rows
        if dated.num_rows:
            self.rendering.submit(dated)

    def render(self, dated: pa.RecordBatch) -> memoryview:
        """The events of records with a start (on a rendering thread: the UIDs' SHA-1, one
        record at a time, holds the GIL while another batch's pyarrow.compute work goes on)."""
        start, end = self._dates(dated)
        lines: list[Any] = ["BEGIN:VEVENT", pc.binary_join_element_wise("UID:", record_uids(dated, self.fields), ""),
                            self.dtstamp, start, end]
        lines += [self._text_line("SUMMARY", self.summary, dated), self._text_line("DESCRIPTION", self.description, dated),
                  self._text_line("LOCATION", self.location, dated), self._geo_line(dated), "END:VEVENT", ""]
        return buffer_of(pc.binary_join_element_wise(*(x for x in lines if x is not None), CRLF, null_handling="skip"))

    def close(self) -> None:
        self.rendering.finish()
        if dropped := sum(self.ends_dropped):
            self.warnings.append(f"{dropped} event(s) had an end not after their start; DTEND left out")
        self.out.write(b"END:VCALENDAR\r\n")

    def abort(self) -> None:
        self.rendering.abort()


def _field_option(name: str, description: str) -> Option:
    return Option(name, "field", None, description=description)


FORMAT = Format(
    name="ical",
    extension="ics",
    media_type="text/calendar; charset=utf-8",
    writer=IcalWriter,
    aliases=("icalendar", "ics"),
    needs=frozenset({"date"}),
    options=(
        _field_option("dtstart_field", "Date or datetime field giving each event's start (default: the first)."),
        _field_option("dtend_field", "Date or datetime field giving each event's end (default: the next one)."),
        _field_option("summary_field", "Field giving each event's title (default: the first text field)."),
        _field_option("description_field", "Field giving each event's description (default: none)."),
        _field_option("location_field", "Text field for LOCATION, or geo_point_2d field for GEO."),
    ),
    description="iCalendar (RFC 5545): one event per record with a start date.",
)
