"""ODSQL literals as Arrow scalars of the type of the field they are compared with, and the
date periods that date literals and date refines stand for.

Dates and times: a date field holds calendar days; a datetime field holds UTC instants. A
date-only literal compared with a date field is a day; compared with a datetime field it is
midnight in the query's timezone (UTC unless told). A literal with a time is an instant (its
own offset, else the query's timezone); compared with a date field, the day is taken as its
midnight UTC. Partial dates (date'2024', date'2024-06') are the first day of the period."""
from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from domain.fields import DATETIME, Field
from domain.odsql import ast
from domain.odsql.errors import ODSQLError
from domain.timeutil import zone_named

_DAY = re.compile(r"^(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?$")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?$")


def zone(name: str, clause: str = "where") -> timezone | ZoneInfo:
    """The tzinfo of an IANA timezone name."""
    if name.upper() == "UTC":
        return timezone.utc
    found = zone_named(name)
    if found is None:
        raise ODSQLError(f"unknown timezone {name[:100]!r}", 0, clause)
    return found


def parse_day(text: str) -> tuple[date, str] | None:
    """The first day of "2024", "2024-06" or "2024-06-21" (also with '/'), and which of
    "year", "month", "day" it names; None when `text` is none of these."""
    match = _DAY.match(text.strip())
    if not match:
        return None
    year, month, day = match.groups()
    try:
        return date(int(year), int(month or 1), int(day or 1)), "day" if day else "month" if month else "year"
    except ValueError:
        return None


def period_end(start: date, unit: str) -> date:
    """The first day after the year, month or day starting at `start`."""
    if unit == "day":
        return start + timedelta(days=1)
    if unit == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return date(start.year + 1, 1, 1)


def parse_instant(text: str, tz: timezone | ZoneInfo) -> datetime | None:
    """The UTC instant of an ISO 8601 date-time; naive ones are read in `tz`."""
    text = text.strip()
    if not _INSTANT.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(timezone.utc)


def clock() -> datetime:
    """The instant now() stands for (tests set it to compare with another engine)."""
    return datetime.now(timezone.utc)


_ABSOLUTE = ("year", "month", "day", "hour", "minute", "second", "microsecond")


def shifted(moment: datetime, shifts: tuple[tuple[str, int], ...], tz: timezone | ZoneInfo) -> datetime:
    """`moment` with now()'s arguments applied as python-dateutil's relativedelta does: the
    absolute parts (year=, hour=, …) set first on the time in `tz`, the day kept within its
    month; then years and months added (the day again kept within the month), then weeks,
    days, hours, minutes, seconds and microseconds. The UTC instant of the result."""
    local = moment.astimezone(tz)
    parts = dict(shifts)
    fields = {name: getattr(local, name) for name in _ABSOLUTE}
    fields.update({name: parts[name] for name in _ABSOLUTE if name in parts})
    months = fields["year"] * 12 + fields["month"] - 1 + parts.get("years", 0) * 12 + parts.get("months", 0)
    year, month = divmod(months, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise ValueError(f"year {year} is out of range")
    fields.update(year=year, month=month, day=min(max(fields["day"], 1), calendar.monthrange(year, month)[1]))
    local = datetime(**fields, tzinfo=tz)  # ValueError for an hour past 23, …
    local += timedelta(weeks=parts.get("weeks", 0), days=parts.get("days", 0), hours=parts.get("hours", 0),
                       minutes=parts.get("minutes", 0), seconds=parts.get("seconds", 0),
                       microseconds=parts.get("microseconds", 0))
    return local.astimezone(timezone.utc)


def midnight(day: date, tz: timezone | ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc)


def operand(field: Field, literal: ast.Literal, tz: timezone | ZoneInfo, clause: str) -> tuple[pc.Expression, pa.Scalar]:
    """The expression of `field` and the scalar of `literal` to compare it with: the literal in
    the field's type, or the field cast where the two meet in another type (a date field
    against an instant)."""
    column = pc.field(field.name)
    value = literal.value

    def fail() -> ODSQLError:
        shown = f"{literal.kind}'{value}'" if literal.kind in ("date", "geom") else repr(value)
        return ODSQLError(f"cannot compare {field.type} field '{field.name}' with {shown}", literal.pos, clause)

    if literal.kind == "null" or field.type in ("geo_point_2d", "geo_shape"):
        raise fail()
    if field.type == "text":
        if literal.kind not in ("string", "number"):
            raise fail()
        return column, pa.scalar(str(value), pa.string())
    if field.type in ("int", "double"):
        if literal.kind not in ("string", "number"):
            raise fail()
        number = as_number(str(value))
        if number is None:
            raise fail()
        if field.type == "int" and isinstance(number, int) and -2**63 <= number < 2**63:
            return column, pa.scalar(number, pa.int64())
        return column.cast(pa.float64()), pa.scalar(float(number), pa.float64())
    if field.type == "boolean":
        if literal.kind == "bool":
            return column, pa.scalar(value, pa.bool_())
        if literal.kind == "string" and str(value).lower() in ("true", "false"):
            return column, pa.scalar(str(value).lower() == "true", pa.bool_())
        raise fail()
    if literal.kind not in ("date", "string"):
        raise fail()
    day = parse_day(str(value))
    if day is not None:
        if field.type == "date":
            return column, pa.scalar(day[0], pa.date32())
        return column, pa.scalar(midnight(day[0], tz), DATETIME)
    instant = parse_instant(str(value), tz)
    if instant is None:
        raise fail()
    if field.type == "date":
        column = column.cast(DATETIME)
    return column, pa.scalar(instant, DATETIME)


def as_number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None
