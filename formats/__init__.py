"""The format registry: every output format, by name and alias. Writers register here the
same way, so the API's `{format}` routes, the OpenAPI document and the worker never disagree."""
from __future__ import annotations

from formats import csv as _csv
from formats import fgdb as _fgdb
from formats import flatgeobuf as _flatgeobuf
from formats import geojson as _geojson
from formats import gpkg as _gpkg
from formats import gpx as _gpx
from formats import ical as _ical
from formats import json as _json
from formats import kml as _kml
from formats import ov2 as _ov2
from formats import parquet as _parquet
from formats import rdf as _rdf
from formats import shapefile as _shapefile
from formats import tsv as _tsv
from formats import xlsx as _xlsx
from formats.base import Format, FormatNotApplicable, Option, OptionError, Writer


class UnknownFormat(KeyError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(name)
        self.message = f"unknown format {name!r}; known formats: {', '.join(known)}"

    def __str__(self) -> str:
        return self.message


class Registry:
    def __init__(self, formats: list[Format]):
        self.formats = {f.name: f for f in formats}
        self.by_alias = {alias: f for f in formats for alias in (f.name, *f.aliases)}

    def get(self, name: str) -> Format:
        fmt = self.by_alias.get(name.lower()) if isinstance(name, str) else None
        if fmt is None:
            raise UnknownFormat(str(name), self.names())
        return fmt

    def names(self) -> list[str]:
        return list(self.formats)

    def all_names(self) -> list[str]:
        """Names and aliases: everything a client may ask for."""
        return list(self.by_alias)

    def __iter__(self):
        return iter(self.formats.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.by_alias


REGISTRY = Registry([  # in the order OpenDataSoft's export menu lists them
    _csv.FORMAT,
    _json.FORMAT,
    _json.JSONL,
    _geojson.FORMAT,
    _shapefile.FORMAT,
    _xlsx.FORMAT,
    _ical.FORMAT,
    _ov2.FORMAT,
    _parquet.FORMAT,
    _flatgeobuf.FORMAT,
    _kml.FORMAT,
    _gpx.FORMAT,
    _gpkg.FORMAT,  # formats ArcGIS Hub and QGIS users expect beside the platform's
    _fgdb.FORMAT,
    *_rdf.FORMATS,
    _tsv.FORMAT,  # OSDI's own example's type, which OpenDataSoft does not offer
])

__all__ = ["REGISTRY", "Format", "FormatNotApplicable", "Option", "OptionError", "Registry", "UnknownFormat", "Writer"]
