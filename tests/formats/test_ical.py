"""The iCalendar writer, read back with icalendar and compared with the sample tables."""
from __future__ import annotations

import gzip
import io
from datetime import date, datetime, timedelta, timezone

import icalendar
import pyarrow as pa
import pytest
import shapely

from domain.fields import Field, fields_of
from formats import REGISTRY
from formats.base import FormatNotApplicable, OptionError
from formats.parallel import INLINE_ROWS
from tests.formats.samples import LONG_TEXT, awkward_table, empty_table, null_table, write

UTC = timezone.utc


def events(data: bytes) -> list[icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(data)
    assert calendar.name == "VCALENDAR" and str(calendar["VERSION"]) == "2.0" and calendar["PRODID"]
    return list(calendar.walk("VEVENT"))


def dated_rows(column: str = "day") -> list[dict]:
    return [r for r in awkward_table().to_pylist() if r[column] is not None]


def test_registered_under_its_aliases():
    for name in ("ical", "icalendar", "ics", "ICS"):
        fmt = REGISTRY.get(name)
        assert fmt.name == "ical" and fmt.media_type == "text/calendar; charset=utf-8" and fmt.extension == "ics"


def test_defaults_start_events_at_the_first_datetime_field():
    data, writer = write("ical", awkward_table())
    got = events(data)
    rows = dated_rows("starts_at")
    assert len(got) == len(rows) == 5 and writer.skipped == 1 and writer.warnings == []
    for event, row in zip(got, rows):
        assert event.decoded("DTSTART") == row["starts_at"] and event.decoded("DTSTART").utcoffset() == timedelta(0)
        assert "DTEND" not in event  # the only datetime: a date is no end for it
        assert str(event["SUMMARY"]) == row["title"]
        assert event["GEO"].latitude == row["geo_point_2d"]["lat"]
        assert event["GEO"].longitude == row["geo_point_2d"]["lon"]
        assert "DESCRIPTION" not in event and "LOCATION" not in event  # no field is named like either
        assert event.decoded("DTSTAMP").tzinfo is not None
    assert b"DTSTART:20240621T183000Z\r\n" in data


def test_defaults_make_all_day_events_from_dates_when_there_is_no_datetime():
    data, writer = write("ical", awkward_table().drop_columns(["starts_at"]).append_column("until", awkward_table().column("day")))
    got, rows = events(data), dated_rows()
    assert len(got) == len(rows) == 5 and writer.skipped == 1
    for event, row in zip(got, rows):
        assert event.decoded("DTSTART") == row["day"] and type(event.decoded("DTSTART")) is date
        assert event.decoded("DTEND") == row["day"] + timedelta(days=1)  # `until`, the same day: exclusive, the day after
    assert b"DTSTART;VALUE=DATE:20240621\r\nDTEND;VALUE=DATE:20240622\r\n" in data


def test_defaults_take_an_end_description_and_location_from_the_fields_names():
    """As a calendar app wants them: the demo dataset's start and end times, its description,
    its city as LOCATION and its point as GEO."""
    from domain import demo

    table = demo.table(rows=60)
    data, writer = write("ical", table, {"timezone": "Europe/Paris"}, batch_size=25)
    got, rows = events(data), table.to_pylist()
    assert len(got) == 60 and writer.skipped == 0
    for event, row in zip(got, rows):
        assert event.decoded("DTSTART") == row["starts_at"] and event.decoded("DTEND") == row["ends_at"]
        assert str(event["SUMMARY"]) == row["title"]
        assert (str(event["DESCRIPTION"]) if "DESCRIPTION" in event else None) == row["description"]
        assert str(event["LOCATION"]) == row["city"]
        if row["geo_point_2d"] is None:
            assert "GEO" not in event
        else:
            assert (event["GEO"].latitude, event["GEO"].longitude) == (row["geo_point_2d"]["lat"], row["geo_point_2d"]["lon"])
    assert b"X-WR-TIMEZONE:Europe/Paris\r\n" in data


def test_geo_from_a_shape_when_there_is_no_point():
    data, _ = write("ical", awkward_table().drop_columns(["geo_point_2d"]))
    got = events(data)
    shapes = [r["geo_shape"] for r in dated_rows("starts_at")]
    for event, shape in zip(got, shapes):
        if shape is None:
            assert "GEO" not in event
            continue
        inside = shapely.point_on_surface(shapely.from_wkb(shape))
        assert (event["GEO"].latitude, event["GEO"].longitude) == pytest.approx((inside.y, inside.x))


def test_options_override_the_defaults():
    data, _ = write("ical", awkward_table(), {"dtstart_field": "day", "summary_field": "category",
                                              "description_field": "title", "location_field": "organiser_name"})
    event = events(data)[0]
    assert event.decoded("DTSTART") == date(2024, 6, 21) and str(event["SUMMARY"]) == "music"
    assert str(event["DESCRIPTION"]) == "Fête de la musique" and str(event["LOCATION"]) == "Ville de Paris"


def test_all_day_event_without_end_ends_the_next_day():
    data, _ = write("ical", awkward_table().select(["title", "day"]))
    for event, row in zip(events(data), dated_rows()):
        assert event.decoded("DTEND") == row["day"] + timedelta(days=1)


def test_datetimes_are_written_in_utc():
    data, writer = write("ical", awkward_table(), {"dtstart_field": "starts_at"})
    got, rows = events(data), dated_rows("starts_at")
    assert len(got) == 5 and writer.skipped == 1
    for event, row in zip(got, rows):
        assert event.decoded("DTSTART") == row["starts_at"] and event.decoded("DTSTART").utcoffset() == timedelta(0)
        assert "DTEND" not in event  # no date field after starts_at
    assert b"DTSTART:20240621T183000Z\r\n" in data


def test_an_end_date_ends_as_its_day_ends_in_the_export_time_zone():
    data, writer = write("ical", awkward_table(), {"dtstart_field": "starts_at", "dtend_field": "day"})
    for event, row in zip(events(data), dated_rows("starts_at")):
        assert event.decoded("DTEND") == datetime.combine(row["day"] + timedelta(days=1), datetime.min.time(), UTC)
    assert writer.warnings == []
    data, writer = write("ical", awkward_table(),
                         {"dtstart_field": "starts_at", "dtend_field": "day", "timezone": "Europe/Paris"})
    got = events(data)
    assert got[0].decoded("DTEND") == datetime(2024, 6, 21, 22, 0, tzinfo=UTC)
    assert "DTEND" not in got[1]  # 1999-12-31 ends at 23:00 UTC, before its 23:59:59 start
    assert writer.warnings == ["1 event(s) had an end not after their start; DTEND left out"]
    assert b"X-WR-TIMEZONE:Europe/Paris\r\n" in data


def test_an_end_before_the_start_of_an_all_day_event_gives_a_one_day_event():
    table = pa.table({"start": [date(2024, 5, 10), date(2024, 5, 10)], "end": [date(2024, 5, 1), date(2024, 5, 12)]})
    data, writer = write("ical", table)
    assert [e.decoded("DTEND") for e in events(data)] == [date(2024, 5, 11), date(2024, 5, 13)]
    assert len(writer.warnings) == 1


def test_text_is_escaped_and_folded():
    data, _ = write("ical", awkward_table(), {"description_field": "organiser_name", "location_field": "category"})
    assert b'SUMMARY:Say "hello"\\, world\\; ok\r\n' in data
    assert b"SUMMARY:line one\\nline two\r\n" in data
    for line in data.split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")  # no UTF-8 character split across lines
    got = events(data)
    assert str(got[3]["SUMMARY"]) == LONG_TEXT
    for event, row in zip(got, dated_rows()):
        description = event.get("DESCRIPTION")
        assert (description is None) if row["organiser_name"] is None else str(description) == row["organiser_name"]
        assert str(event["LOCATION"]) == row["category"]


def test_location_field_may_be_a_point():
    table = awkward_table().append_column("where", awkward_table().column("geo_point_2d"))
    data, _ = write("ical", table.drop_columns(["geo_point_2d"]), {"location_field": "where"})
    assert [(e["GEO"].latitude, e["GEO"].longitude) for e in events(data)][0] == (48.8566, 2.3522)


def test_uids_are_unique_and_stable_across_exports_and_batches():
    first, _ = write("ical", awkward_table())
    second, _ = write("ical", awkward_table(), {"summary_field": "category"}, batch_size=1)
    reordered, _ = write("ical", awkward_table().take([5, 4, 3, 2, 1, 0]))
    uids = [str(e["UID"]) for e in events(first)]
    assert len(set(uids)) == 5 and all(u.endswith("@exportd") for u in uids)
    assert [str(e["UID"]) for e in events(second)] == uids
    assert [str(e["UID"]) for e in events(reordered)] == uids[::-1]


def test_batches_rendered_on_threads_keep_their_order_and_counts():
    """Batches above the inline size render two at a time on threads: the events come out in
    the records' order, and the ends dropped and records skipped are counted over all of them."""
    table = pa.concat_tables([awkward_table()] * 400).combine_chunks()
    options = {"dtstart_field": "starts_at", "dtend_field": "day", "timezone": "Europe/Paris"}  # one end dropped
    one_by_one, alone = write("ical", table.slice(0, 6), options, batch_size=1)
    threaded, writer = write("ical", table, options, batch_size=2 * INLINE_ROWS + 1)
    summaries = [str(e["SUMMARY"]) for e in events(one_by_one)]
    assert [str(e["SUMMARY"]) for e in events(threaded)] == summaries * 400
    assert writer.skipped == 400 * alone.skipped
    dropped = int(alone.warnings[0].split()[0])
    assert writer.warnings == [f"{400 * dropped} event(s) had an end not after their start; DTEND left out"]


def test_abort_stops_rendering_and_writes_nothing_more():
    table = pa.concat_tables([awkward_table()] * 1000).combine_chunks()
    fmt = REGISTRY.get("ical")
    out = io.BytesIO()
    writer = fmt.open(out, table.schema, fields_of(table.schema), fmt.parse_options({}, fields_of(table.schema)))
    for batch in table.to_batches(max_chunksize=2 * INLINE_ROWS + 1):  # dated ones above the inline size: on threads
        writer.write(batch)
    writer.abort()
    written = out.getvalue()
    assert not written.endswith(b"END:VCALENDAR\r\n") and written.count(b"BEGIN:VEVENT") < 5000
    writer.abort()
    assert out.getvalue() == written


def test_empty_and_null_tables_give_empty_calendars():
    data, writer = write("ical", empty_table())
    assert events(data) == [] and writer.skipped == 0
    assert data.startswith(b"BEGIN:VCALENDAR\r\n") and data.endswith(b"END:VCALENDAR\r\n")
    data, writer = write("ical", null_table())
    assert events(data) == [] and writer.skipped == 2


def test_compressed():
    data, _ = write("ical", awkward_table(), {"compressed": True})
    assert len(events(gzip.decompress(data))) == 5


def test_options_naming_unknown_or_unfit_fields_are_refused():
    with pytest.raises(OptionError, match="nope"):
        write("ical", awkward_table(), {"summary_field": "nope"})
    with pytest.raises(OptionError, match="dtstart_field"):
        write("ical", awkward_table(), {"dtstart_field": "title"})
    with pytest.raises(OptionError, match="unknown option"):
        write("ical", awkward_table(), {"dtstart": "day"})


def test_a_dataset_without_a_date_field_is_refused():
    fmt = REGISTRY.get("ical")
    undated = [f for f in fields_of(awkward_table().schema) if f.type not in ("date", "datetime")]
    with pytest.raises(FormatNotApplicable, match="date"):
        fmt.check(undated)
    assert fmt.fits(undated + [Field("when", "datetime")])
