"""What a format is (data) and what a writer does (state), kept apart as GDAL keeps driver
metadata apart from layers.

A writer's life: open with the Arrow schema, the dataset's fields and the parsed options;
`write(batch)` any number of times; `close()` once to finish footers. Writers know nothing of
HTTP, Redis or jobs, and never hold more than one batch.
"""
from __future__ import annotations

import gzip
import io
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, ClassVar, Iterable, Mapping, Sequence

import pyarrow as pa

from domain.fields import DATE_TYPES, GEOMETRY_TYPES, Field
from domain.timeutil import zone_named
from formats.names import file_stem

if TYPE_CHECKING:
    import polars as pl


class OptionError(ValueError):
    """An option that is unknown or has a bad value; the message names it."""


class FormatNotApplicable(ValueError):
    """The dataset lacks what the format needs (a geometry, a date field, …)."""


_INTEGER = re.compile(r"\s*-?[0-9]{1,12}\s*")
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class Option:
    """One option of a format. `kind` is bool, int, str, "choice", "field" (a field name of
    the dataset), "fields" (a list of them) or "timezone". Values come either as JSON values
    (POST bodies) or as strings (query parameters); both parse to the same Python value."""

    name: str
    kind: Any
    default: Any = None
    choices: tuple[Any, ...] = ()
    description: str = ""
    bounds: tuple[int, int] = (-(2**31), 2**31 - 1)  # of an int option

    def parse(self, raw: Any, strict: bool = False) -> Any:
        """The option's value from `raw`: a JSON value, or with `strict` False also a query
        string's spelling of one ("true", "no", "25"). A JSON body's boolean must be a boolean:
        "yes" there is a mistake, not a yes."""
        if strict and self.kind is bool and not isinstance(raw, bool):
            raise OptionError(f"option {self.name!r} must be true or false (a JSON boolean), not {raw!r}")
        if strict and self.kind is int and not (isinstance(raw, int) and not isinstance(raw, bool)):
            raise OptionError(f"option {self.name!r} must be an integer (a JSON number), not {raw!r}")
        try:
            value = self._parse(raw)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"option {self.name!r}: {exc}") from None
        if self.choices and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise OptionError(f"option {self.name!r} must be one of {allowed}, not {raw!r}")
        return value

    def _parse(self, raw: Any) -> Any:
        if self.kind is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in TRUE_WORDS | FALSE_WORDS:
                return raw.lower() in TRUE_WORDS
            raise ValueError(f"expected true or false, not {raw!r}")
        if self.kind is int:
            if isinstance(raw, bool) or not (isinstance(raw, int) or isinstance(raw, str) and _INTEGER.fullmatch(raw)):
                raise ValueError(f"expected an integer, not {raw!r}")
            value = int(raw)
            low, high = self.bounds
            if not low <= value <= high:
                raise ValueError(f"expected an integer from {low} to {high}, not {value}")
            return value
        if self.kind == "timezone":
            if not isinstance(raw, str):
                raise ValueError(f"expected a time zone name, not {raw!r}")
            if zone_named(raw) is None:
                raise ValueError(f"unknown time zone {raw[:100]!r}")
            return raw
        if self.kind == "fields":
            if isinstance(raw, str):
                raw = [part.strip() for part in raw.split(",") if part.strip()]
            if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
                raise ValueError(f"expected a list of field names, not {raw!r}")
            return tuple(raw)
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, not {raw!r}")
        return raw

    def describe(self) -> dict[str, Any]:
        kind = {bool: "boolean", int: "integer", str: "string"}.get(self.kind, self.kind)
        out: dict[str, Any] = {"name": self.name, "type": kind, "default": self.default}
        if self.kind is int:
            out["minimum"], out["maximum"] = self.bounds
        if self.choices:
            out["choices"] = list(self.choices)
        if self.description:
            out["description"] = self.description
        return out


WGS84 = 4326  # the EPSG code geometries are stored in


# Options OpenDataSoft applies to every export.
COMMON_OPTIONS: tuple[Option, ...] = (
    Option("timezone", "timezone", "UTC", description="Time zone datetimes are written in."),
    Option("use_labels", bool, False, description="Use field labels, not names, as column names."),
    Option("compressed", bool, False, description="Gzip the file; '.gz' is added to its name."),
    Option("datapackage", bool, False, description="A zip of the file and a Frictionless datapackage.json: the dataset's "
           "metadata, the table schema, the query, the file's size and SHA-256; '.zip' is added to its name."),
    Option("epsg", int, WGS84, bounds=(1024, 999_999),
           description="Reproject geometries to this EPSG code (geojson, shp, fgb, gpkg and fgdb; 4326 elsewhere)."),
)


def unique_names(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name} ({n})"
        seen.add(candidate)
        out.append(candidate)
    return out


class Writer:
    """Base of every writer. Subclasses implement `write` and `close`; they count records
    they had to skip in `skipped` and note anything a person should know in `warnings`."""

    def __init__(self, out: BinaryIO, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any]):
        self.out = out
        self.schema = schema
        self.fields = list(fields)
        self.options = dict(options)
        self.skipped = 0
        self.warnings: list[str] = []

    def column_names(self) -> list[str]:
        """The output column names: names, or labels with use_labels (a label two fields share
        gets " (2)", " (3)", … after the first, so no column hides another)."""
        if self.options.get("use_labels"):
            return unique_names([f.label for f in self.fields])
        return [f.name for f in self.fields]

    takes_lazy = False  # whether write_lazy takes the scan as a polars LazyFrame

    def write(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def write_lazy(self, frame: pl.LazyFrame, seen: Callable[[pl.DataFrame], None]) -> None:
        """In writers whose `takes_lazy`: write every record of `frame` (the scan's columns)
        at once, instead of write() batch by batch, calling `seen` with each batch polars
        reads (from polars' threads, one at a time); what `seen` raises stops the writing."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Give up: drop anything the writer holds outside `out` (temporary files, threads).
        Called instead of close() when the export fails or is cancelled."""


@dataclass(frozen=True)
class Format:
    """A format as data: what the registry, the API and the OpenAPI document know of it."""

    name: str
    extension: str
    media_type: str
    writer: Callable[..., Writer]
    aliases: tuple[str, ...] = ()
    binary: bool = False
    needs: frozenset[str] = frozenset()  # "geometry", "date"
    options: tuple[Option, ...] = ()
    description: str = ""
    # The names of the fields the output depends on, given the fields and parsed options; None: all.
    reads: Callable[[Sequence[Field], Mapping[str, Any]], list[str] | None] | None = None
    reprojects: bool = False  # whether its writer takes an `epsg` other than 4326
    all_options: dict[str, Option] = field(init=False, repr=False, compare=False)

    NEEDS: ClassVar[dict[str, frozenset[str]]] = {"geometry": GEOMETRY_TYPES, "date": DATE_TYPES}

    def __post_init__(self) -> None:
        merged = {o.name: o for o in COMMON_OPTIONS}
        merged.update({o.name: o for o in self.options})
        object.__setattr__(self, "all_options", merged)

    def check(self, fields: Iterable[Field]) -> None:
        """Refuse, before any work, a dataset that lacks what this format needs."""
        types = {f.type for f in fields}
        for need in sorted(self.needs):
            wanted = self.NEEDS[need]
            if not types & wanted:
                kinds = " or ".join(sorted(wanted))
                raise FormatNotApplicable(
                    f"format {self.name!r} needs a {need} field ({kinds}) and the dataset has none"
                )

    def fits(self, fields: Iterable[Field]) -> bool:
        try:
            self.check(fields)
        except FormatNotApplicable:
            return False
        return True

    def fields_read(self, fields: Sequence[Field], options: Mapping[str, Any]) -> list[str] | None:
        """The fields the writer reads, in no particular order, or None for all of them: an
        export scans only these columns (an OV2 file holds a point and a name, whatever the
        dataset's width). The writer, opened on just these fields, writes the same file."""
        return self.reads(fields, options) if self.reads else None

    def parse_options(self, raw: Mapping[str, Any] | None, fields: Sequence[Field] = (),
                      strict: bool = False) -> dict[str, Any]:
        """Every option with its value: the given ones parsed, the rest defaulted. Unknown
        names, bad values, options naming fields the dataset lacks and an `epsg` the format
        cannot write raise OptionError. `strict`: `raw` is a JSON body's (see Option.parse)."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(self.all_options))
        if unknown:
            raise OptionError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for format {self.name!r}; "
                f"known: {', '.join(sorted(self.all_options))}"
            )
        names = {f.name for f in fields}
        parsed: dict[str, Any] = {}
        for name, option in self.all_options.items():
            if name not in raw or raw[name] is None:
                parsed[name] = option.default
                continue
            value = option.parse(raw[name], strict)
            if fields and option.kind in ("field", "fields"):
                missing = [v for v in ((value,) if option.kind == "field" else value) if v not in names]
                if missing:
                    raise OptionError(f"option {name!r} names unknown field(s) {', '.join(map(repr, missing))}")
            parsed[name] = value
        if parsed.get("epsg", WGS84) != WGS84 and not self.reprojects:
            raise OptionError(f"option 'epsg': format {self.name!r} writes EPSG:4326 only; "
                              f"reprojection to EPSG:{parsed['epsg']} is supported for geojson, shp, fgb, gpkg and fgdb")
        return parsed

    def filename(self, stem: str, options: Mapping[str, Any]) -> str:
        name = f"{file_stem(stem)}.{self.extension}"
        name = name + ".gz" if options.get("compressed") else name
        return name + ".zip" if options.get("datapackage") else name

    def content_type(self, options: Mapping[str, Any]) -> str:
        if options.get("datapackage"):
            return "application/zip"
        if options.get("compressed"):
            return "application/gzip"
        return self.media_type

    def probe(self, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any]) -> None:
        """Open a writer on a throwaway sink and abort it, so every check a writer makes when
        it opens (options against the data, names a format cannot hold) runs before an export
        is accepted rather than in the worker."""
        self.writer(io.BytesIO(), schema, fields, options).abort()

    def open(self, out: BinaryIO, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any],
             name: str | None = None) -> "OpenWriter":
        """The writer, opened; `name` (the dataset's id) names what is inside the file where the
        format names things (a shapefile zip's members, a sheet, a layer), as `stem`."""
        if name is not None:
            options = {**options, "stem": name}
        return OpenWriter(self, out, schema, fields, options)


class _GzipOut(gzip.GzipFile):
    """Gzip output only goes forward: refusing seek makes writers that would seek back (zipfile
    rewriting its local headers) stream instead. Its header names no file (gzip would take
    the partial file's name from `out`)."""

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        raise io.UnsupportedOperation("a gzip stream cannot seek")


class OpenWriter:
    """A writer with the common wrapping applied (gzip for `compressed`). Use as the writer."""

    def __init__(self, fmt: Format, out: BinaryIO, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any]):
        self._gzip = _GzipOut(filename="", fileobj=out, mode="wb", compresslevel=6, mtime=0) if options.get("compressed") else None
        self.writer = fmt.writer(self._gzip or out, schema, fields, options)

    @property
    def skipped(self) -> int:
        return self.writer.skipped

    @property
    def warnings(self) -> list[str]:
        return self.writer.warnings

    @property
    def takes_lazy(self) -> bool:
        return self.writer.takes_lazy

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write(batch)

    def write_lazy(self, frame: pl.LazyFrame, seen: Callable[[pl.DataFrame], None]) -> None:
        self.writer.write_lazy(frame, seen)

    def close(self) -> None:
        self.writer.close()
        if self._gzip is not None:
            self._gzip.close()

    def abort(self) -> None:
        self.writer.abort()
