"""GeoJSON resources, streamed feature by feature.

A FeatureCollection's `features` array is cut into features by a small scanner that follows
JSON's strings and brackets (`FeatureScanner`), so only one feature's text is held at a time;
each is parsed with orjson. Each feature's properties become text columns (nested values as
JSON) and its geometry two columns, as OpenDataSoft does: `geo_shape` (WKB, via shapely) and
`geo_point_2d` (the point itself, or the geometry's centroid).

A document that is not a FeatureCollection (one Feature, or a bare geometry) is read whole,
up to WHOLE_DOCUMENT_LIMIT bytes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import orjson
import pyarrow as pa
import shapely

from domain.errors import Invalid
from domain.fields import GEO_POINT
from domain.resources.names import Namer
from domain.resources.spec import Column, RawChunk, Rejected, ResourceSpec

GEO_SHAPE = "geo_shape"
GEO_POINT_2D = "geo_point_2d"
WHOLE_DOCUMENT_LIMIT = 64 * 1024 * 1024
_READ = 1 << 20
_STRUCTURE = re.compile(rb'[{}\[\]":]')
_BRACE_OR_STRING = re.compile(rb'[{}"]')
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BETWEEN = re.compile(rb'[\s,]*')
_CANDIDATE_END = re.compile(rb'\}(?=\s*[,\]])')
_ATTEMPTS = 32  # parses tried on candidate ends before following the feature's braces instead


class FeatureScanner:
    """The features of a FeatureCollection, parsed one at a time, read from a binary file in
    chunks; only the current feature's bytes are held. `found` says whether a top-level
    `features` array was met.

    Up to the features array it follows JSON's strings and brackets. Then each feature is the
    shortest text from its `{` to a `}` followed by `,` or `]` that orjson parses: a shorter
    slice ends inside the object or inside a string, and is not JSON. A feature with many
    nested objects is delimited by following its braces instead (see _ATTEMPTS)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.found = False
        self.buf = b""
        self.eof = False

    def _more(self, keep: int) -> int:
        """Drop the buffer before `keep`, read the next chunk; answers how much was dropped."""
        if self.eof:
            raise Invalid("the GeoJSON document ends before its features are closed (a file cut short?)")
        self.buf = self.buf[keep:]
        chunk = self.file.read(_READ)
        self.eof = not chunk
        self.buf += chunk
        return keep

    def __iter__(self) -> Iterator[dict]:
        pos = self._features_array()
        if pos < 0:
            return
        while True:
            m = _BETWEEN.match(self.buf, pos)
            pos = m.end()
            if pos >= len(self.buf):
                pos -= self._more(pos)
                continue
            c = self.buf[pos:pos + 1]
            if c == b"]":
                return
            if c != b"{":
                raise Invalid("a GeoJSON FeatureCollection's features must be objects")
            feature, pos = self._feature(pos)
            yield feature

    def _features_array(self) -> int:
        """The position just inside the top-level `features` array, or -1 if there is none."""
        pos = depth = 0
        last_string: bytes | None = None
        key: bytes | None = None
        while True:
            m = _STRUCTURE.search(self.buf, pos)
            string = _STRING.match(self.buf, m.start()) if m is not None and m.group() == b'"' else None
            if m is None or m.group() == b'"' and string is None:
                if self.eof:
                    return -1
                keep = m.start() if m is not None else len(self.buf)
                pos = keep - self._more(keep)
                continue
            if string is not None:
                pos = string.end()
                if depth == 1:
                    last_string = self.buf[m.start() + 1:pos - 1]
                continue
            c, pos = m.group(), m.end()
            if c == b":" and depth == 1:
                key = last_string
            elif c in (b"{", b"["):
                depth += 1
                if c == b"[" and depth == 2 and key == b"features":
                    self.found = True
                    return pos
            elif c in (b"}", b"]"):
                depth -= 1

    def _feature(self, start: int) -> tuple[dict, int]:
        """The feature whose `{` is at `start`, and the position after it (the buffer may be
        refilled: positions are in the buffer as it is on return)."""
        search = start + 1
        attempts = 0
        error: orjson.JSONDecodeError | None = None
        while attempts < _ATTEMPTS:
            m = _CANDIDATE_END.search(self.buf, search)
            if m is None:
                if self.eof and error is not None:
                    raise error  # the last candidate was no JSON: the feature is not
                dropped = self._more(start)
                start, search = 0, max(search - dropped, 1)
                continue
            attempts += 1
            try:
                return orjson.loads(self.buf[start:m.end()]), m.end()
            except orjson.JSONDecodeError as e:
                search, error = m.end(), e
        start, end = self._braces(start)
        return orjson.loads(self.buf[start:end]), end

    def _braces(self, start: int) -> tuple[int, int]:
        """Where the object whose `{` is at `start` begins and ends, following its braces."""
        pos, depth = start + 1, 1
        while True:
            m = _BRACE_OR_STRING.search(self.buf, pos)
            string = _STRING.match(self.buf, m.start()) if m is not None and m.group() == b'"' else None
            if m is None or m.group() == b'"' and string is None:
                resume = m.start() if m is not None else len(self.buf)
                dropped = self._more(start)
                start, pos = 0, resume - dropped
                continue
            if string is not None:
                pos = string.end()
                continue
            pos = m.end()
            depth += 1 if m.group() == b"{" else -1
            if depth == 0:
                return start, pos


class GeoJsonSource:
    """A GeoJSON file's features in chunks. Its columns are known only as features are read:
    `self.columns` grows as properties are met (the same way at each read)."""

    open_columns = True  # a property may first appear in any feature

    def __init__(self, path: Path, spec: ResourceSpec) -> None:
        self.path = path
        self._namer = Namer(reserved=(GEO_SHAPE, GEO_POINT_2D))
        self.properties: list[Column] = []

    @property
    def columns(self) -> list[Column]:
        """The properties met so far, then the geometry's two columns."""
        return self.properties + [Column(GEO_POINT_2D, GEO_POINT_2D), Column(GEO_SHAPE, GEO_SHAPE)]

    def features(self) -> Iterator[dict]:
        with open(self.path, "rb") as f:
            scanner = FeatureScanner(f)
            try:
                yield from scanner
            except orjson.JSONDecodeError as e:
                raise Invalid(f"{self.path.name} is not valid JSON: {e}") from None
            if scanner.found:
                return
        if self.path.stat().st_size > WHOLE_DOCUMENT_LIMIT:
            raise Invalid(f"{self.path.name} is not a FeatureCollection; such a GeoJSON is read whole, up to "
                          f"{WHOLE_DOCUMENT_LIMIT // (1024 * 1024)} MiB")
        document = _parse(self.path.read_bytes(), self.path)
        kind = document.get("type")
        if kind == "Feature":
            yield document
        elif kind == "FeatureCollection":
            yield from document.get("features") or []
        elif isinstance(kind, str) and "coordinates" in document or kind == "GeometryCollection":
            yield {"type": "Feature", "properties": {}, "geometry": document}
        else:
            raise Invalid(f"{self.path.name} is not GeoJSON: no FeatureCollection, Feature or geometry")

    def chunks(self, rows: int) -> Iterator[RawChunk]:
        """Features in chunks of up to `rows`, numbered from 1."""
        batch: list[dict] = []
        first = 1
        for feature in self.features():
            batch.append(feature)
            if len(batch) >= rows:
                yield self._chunk(batch, first)
                first += len(batch)
                batch = []
        if batch:
            yield self._chunk(batch, first)

    def _chunk(self, features: list[dict], first: int) -> RawChunk:
        properties: dict[str, list] = {}
        geometries: list[str | None] = []
        for i, feature in enumerate(features):
            props = feature.get("properties") or {}
            if not isinstance(props, dict):
                props = {}
            for label, value in props.items():
                name = self._column(str(label))
                column = properties.get(name)
                if column is None:
                    column = properties[name] = [None] * len(features)
                column[i] = _text(value)
            geometry = feature.get("geometry")
            geometries.append(None if geometry is None else orjson.dumps(geometry).decode())
        strings = np.array(geometries, dtype=object)
        given = np.array([g is not None for g in geometries], dtype=bool)
        geoms = np.empty(len(strings), dtype=object)
        if given.any():
            geoms[given] = shapely.from_geojson(strings[given], on_invalid="ignore")
        invalid = given & shapely.is_missing(geoms)
        numbers = list(range(first, first + len(features)))
        rejected = [Rejected(n, "the geometry is not valid GeoJSON") for n, bad in zip(numbers, invalid) if bad]
        keep = ~invalid
        columns = {name: pa.array([v for v, k in zip(values, keep) if k], pa.string()) for name, values in properties.items()}
        geoms = geoms[keep]
        columns[GEO_SHAPE] = pa.array(shapely.to_wkb(geoms), pa.binary(), mask=shapely.is_missing(geoms))
        columns[GEO_POINT_2D] = _points(geoms)
        return RawChunk([n for n, k in zip(numbers, keep) if k], columns, rejected)

    def _column(self, label: str) -> str:
        column = self._namer.column(label)
        if column not in self.properties:
            self.properties.append(column)
        return column.name


def _points(geoms: np.ndarray) -> pa.Array:
    """Each geometry's point: itself for a point, else its centroid; null when missing or empty."""
    centres = shapely.centroid(geoms)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    lon = shapely.get_x(centres)
    lat = shapely.get_y(centres)
    return pa.StructArray.from_arrays(
        [pa.array(lon, pa.float64(), mask=missing), pa.array(lat, pa.float64(), mask=missing)],
        fields=list(GEO_POINT), mask=pa.array(missing))


def _parse(raw: bytes, path: Path) -> dict:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise Invalid(f"{path.name} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise Invalid(f"{path.name}: a GeoJSON feature or document must be a JSON object")
    return value


def _text(value: object) -> str | None:
    """A property's value as text: strings as they are, booleans as true/false, numbers as JSON
    writes them, objects and arrays as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value).decode()
