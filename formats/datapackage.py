"""The `datapackage` option, for every format: the export becomes a zip of its file and a
Frictionless Data Package descriptor (datapackage.json, https://specs.frictionlessdata.io/) —
the dataset's metadata (title, description, license, publisher, keywords, version, source URL),
the table schema with each field's type, the query that made the file, and the file's size and
SHA-256.

The format's writer writes its file as for any export, into a temporary file (some writers
need a real file: FlatGeobuf's index, polars' Parquet); the file is then copied into the zip,
hashed as it goes, and the descriptor follows it."""
from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO, Mapping, Sequence

import orjson

from domain.fields import Field

DESCRIPTOR = "datapackage.json"
# exportd's field types as Table Schema types; geometries are strings in a CSV ("lat, lon",
# WKT or GeoJSON text), not the spec's "lon, lat" geopoint, so they are declared as strings
TYPES = {"int": "integer", "double": "number", "text": "string", "boolean": "boolean", "date": "date",
         "datetime": "datetime", "geo_point_2d": "string", "geo_shape": "string"}
TABULAR = {"csv": {"delimiter": ";"}, "tsv": {"delimiter": "\t"}}  # formats a reader validates row by row
# formats whose bytes are compressed already: stored in the zip as they are
STORED = {"parquet", "shp", "xlsx", "fgb", "gpkg", "fgdb", "zip"}


def package_name(name: str) -> str:
    """A Data Package name: lower case letters, digits, '-', '_' and '.'."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "export"


# in JSON (and Parquet's structs) a point is an object {"lon": …, "lat": …}, a shape a GeoJSON object
JSON_GEO = {"geo_point_2d": {"type": "object", "description": "{lon, lat} (WGS 84)"},
            "geo_shape": {"type": "object", "description": "a GeoJSON geometry (WGS 84)"}}
OBJECT_GEO = ("json", "jsonl")
# GeoParquet holds geometries as WKB bytes, which Table Schema has no type for
PARQUET_GEO = {"type": "any", "description": "WKB (GeoParquet 1.1, WGS 84)"}


def field_schema(field: Field, export_type: str = "csv") -> dict[str, Any]:
    schema: dict[str, Any] = {"name": field.name, "type": TYPES.get(field.type, "string")}
    if export_type == "parquet" and field.type in JSON_GEO:
        return {**schema, **PARQUET_GEO}
    if export_type in OBJECT_GEO and field.type in JSON_GEO:
        return {**schema, **JSON_GEO[field.type]}
    if field.label and field.label != field.name:
        schema["title"] = field.label
    if field.type == "geo_point_2d":
        schema["description"] = "latitude, longitude (WGS 84)"
    elif field.type == "geo_shape":
        schema["description"] = "a geometry (WGS 84)"
    return schema


def descriptor(*, dataset: Mapping[str, Any], fields: Sequence[Field], member: str, export_type: str, media_type: str,
               options: Mapping[str, Any], query: Mapping[str, Any], sha256: str, size: int) -> dict[str, Any]:
    """datapackage.json for one file of `size` bytes and digest `sha256`. `dataset` holds the
    dataset's id, title, description, version, source URL and metadata (license, publisher,
    keywords, …)."""
    metadata = dataset.get("metadata") or {}
    resource: dict[str, Any] = {
        "name": package_name(dataset["dataset_id"]), "path": member, "format": export_type, "mediatype": media_type,
        "bytes": size, "hash": f"sha256:{sha256}",
        "schema": {"fields": [field_schema(f, export_type) for f in fields]},
    }
    if export_type in TABULAR and not options.get("compressed"):
        resource.update(profile="tabular-data-resource", encoding="utf-8-sig",
                        dialect={**TABULAR[export_type], "delimiter": _delimiter(export_type, options)})
    package: dict[str, Any] = {
        "profile": "data-package",
        "name": package_name(dataset["dataset_id"]),
        "title": dataset.get("title") or dataset["dataset_id"],
        "version": dataset.get("version", ""),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resources": [resource],
        "exportd": {"export_type": export_type, "options": dict(options), "query": dict(query)},
    }
    if dataset.get("description"):
        package["description"] = dataset["description"]
    if dataset.get("source"):
        package["sources"] = [{"title": dataset.get("title") or dataset["dataset_id"], "path": dataset["source"]}]
    if metadata.get("license"):
        package["licenses"] = [{"name": package_name(metadata["license"]), "title": metadata["license"]}]
    if metadata.get("publisher"):
        package["contributors"] = [{"title": metadata["publisher"], "role": "publisher"}]
    if metadata.get("keywords"):
        package["keywords"] = list(metadata["keywords"])
    return package


def _delimiter(export_type: str, options: Mapping[str, Any]) -> str:
    chosen = options.get("delimiter")
    if export_type != "csv" or not chosen:
        return TABULAR[export_type]["delimiter"]
    return "\t" if chosen in ("tab", "\\t") else chosen


@dataclass
class About:
    """What a package says of its file beyond the file itself: the dataset (its id, title,
    description, version, source URL and metadata) and the query that made the file."""

    dataset: dict[str, Any]
    query: dict[str, Any]


CHUNK = 1 << 20


def pack(out: BinaryIO, inner: BinaryIO, member: str, fmt: Any, options: Mapping[str, Any], fields: Sequence[Field],
         about: About) -> None:
    """The zip of `inner` (the format's finished file, read from its start) as `member`, then
    its descriptor, onto `out`."""
    stamp = datetime.now(timezone.utc).timetuple()[:6]
    info = zipfile.ZipInfo(member, date_time=stamp)
    info.compress_type = zipfile.ZIP_STORED if fmt.name in STORED or options.get("compressed") else zipfile.ZIP_DEFLATED
    digest, size = hashlib.sha256(), 0
    with zipfile.ZipFile(out, "w", allowZip64=True) as archive:
        with archive.open(info, "w", force_zip64=True) as target:
            while chunk := inner.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                target.write(chunk)
        body = descriptor(dataset=about.dataset, fields=fields, member=member, export_type=fmt.name,
                          media_type=fmt.content_type({**options, "datapackage": False}), options=options,
                          query=about.query, sha256=digest.hexdigest(), size=size)
        archive.writestr(zipfile.ZipInfo(DESCRIPTOR, date_time=stamp), orjson.dumps(body, option=orjson.OPT_INDENT_2),
                         compress_type=zipfile.ZIP_DEFLATED)
