"""Telling a resource's type from its name and first bytes, and a CSV's delimiter and encoding."""
from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from pathlib import Path

from domain.resources.spec import ResourceSpec

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
SAMPLE_RECORDS = 50
_CHUNK = 1 << 20

_SUFFIXES = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".geojson": "geojson", ".json": "geojson",
    ".parquet": "parquet", ".pq": "parquet",
    ".xlsx": "xlsx",
}


def sniff(path: Path) -> ResourceSpec:
    """The resource a file holds, from its first bytes (Parquet and XLSX magic numbers, a JSON
    object) and else its name; a CSV comes with its delimiter and encoding."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
    if head.startswith(b"PAR1"):
        return ResourceSpec("parquet", {})
    if head.startswith(b"PK\x03\x04"):
        return ResourceSpec("xlsx", {})
    stripped = head.lstrip(codecs.BOM_UTF8).lstrip()
    kind = _SUFFIXES.get(path.suffix.lower())
    if stripped.startswith(b"{") and kind in (None, "geojson"):
        return ResourceSpec("geojson", {})
    if kind in ("parquet", "xlsx", "geojson"):
        return ResourceSpec(kind, {})
    encoding = sniff_encoding(path)
    return ResourceSpec("csv", {"delimiter": sniff_delimiter(path, encoding), "encoding": encoding})


def sniff_encoding(path: Path) -> str:
    """utf-8-sig when the file starts with a byte order mark, utf-8 when the whole file decodes
    as UTF-8 (checked to the end, streamed: a single accented byte may come late), else cp1252
    when it decodes so (Windows' superset of latin-1 most files called latin-1 are in), else latin-1."""
    with open(path, "rb") as f:
        if f.read(3) == codecs.BOM_UTF8:
            return "utf-8-sig"
    if _decodes(path, "utf-8"):
        return "utf-8"
    if _decodes(path, "cp1252"):
        return "cp1252"
    return "latin-1"


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def sniff_delimiter(path: Path, encoding: str) -> str:
    """The delimiter among `, ; tab |` that splits the first records into the same number of
    values, the most values winning; `,` when none splits anything."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
        truncated = bool(f.read(1))
    text = head.decode(encoding, errors="replace")
    if truncated and "\n" in text:
        text = text[: text.rindex("\n")]  # the last line may be cut
    best, best_score = ",", (0, 0.0)
    for delimiter in DELIMITERS:
        try:
            records = [r for _, r in zip(range(SAMPLE_RECORDS), csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)) if r]
        except csv.Error:
            continue
        if not records:
            continue
        width, count = Counter(len(r) for r in records).most_common(1)[0]
        if width < 2:
            continue
        score = (1 if len(records[0]) == width else 0, count / len(records) + width / 1000)
        if score > best_score:
            best, best_score = delimiter, score
    return best
