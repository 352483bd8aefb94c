"""The records as RDF in four syntaxes: Turtle, N3 (the same text: Turtle is valid N3),
RDF/XML and JSON-LD, all streamed as text — never an rdflib Graph.

Each record is a resource `<base><n>` (`base` option, default
`urn:exportd:dataset:<dataset id>:record:` — the dataset's id from Format.open's name, so the
records of two datasets never share an IRI; `urn:exportd:record:` without one; n is the
record's 1-based position in the export, so the same query over the same data gives the same
IRIs). Each non-null value is a triple whose property is `<namespace><field name>` (`namespace`
option, default `urn:exportd:dataset:<dataset id>:field:`, or `urn:exportd:field:`; the name
percent-encoded where it has to be) and whose
object is a typed literal: xsd:integer, xsd:double, xsd:boolean, xsd:date, xsd:dateTime (with
the offset of the `timezone` option), geo:wktLiteral for geo_point_2d and geo_shape (lon lat
order, CRS84 as GeoSPARQL assumes), plain strings for text. Nulls are left out; a record whose
values are all null has no triple at all, so it is skipped and counted in `skipped`.
Properties are named after field names even with `use_labels`: labels change and have spaces.
RDF/XML can only spell a property whose IRI ends in an XML name, so it refuses, when opened,
a field named e.g. `2019` (the other syntaxes write it).

Turtle and RDF/XML are built column by column with pyarrow.compute; JSON-LD goes through
orjson one record at a time, like the JSON export.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats.base import Format, FormatNotApplicable, Option, OptionError, Writer
from formats.values import date_strings, datetime_strings, point_coords

XSD = "http://www.w3.org/2001/XMLSchema#"
GEO = "http://www.opengis.net/ont/geosparql#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DATATYPES = {
    "int": XSD + "integer", "double": XSD + "double", "boolean": XSD + "boolean", "date": XSD + "date",
    "datetime": XSD + "dateTime", "geo_point_2d": GEO + "wktLiteral", "geo_shape": GEO + "wktLiteral",
}
BAD_IRI = re.compile(r'[\x00-\x20<>"{}|^`\\]')
TURTLE_LOCAL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
XML_LOCAL_AT_END = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*$")
CONTROLS = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"


def lexical_forms(column: pa.Array, field_type: str, tz: str) -> pa.Array:
    """Each value's lexical form in its datatype (see DATATYPES); null stays null."""
    if field_type == "datetime":
        return datetime_strings(column, tz)
    if field_type == "date":
        return date_strings(column)
    if field_type == "geo_point_2d":
        lon, lat = point_coords(column)
        return pc.binary_join_element_wise("POINT(", lon.cast(pa.string()), " ", lat.cast(pa.string()), ")", "")
    if field_type == "geo_shape":
        geoms = shapely.from_wkb(column.to_numpy(zero_copy_only=False))
        return pa.array(shapely.to_wkt(geoms, rounding_precision=-1), pa.string(), mask=shapely.is_missing(geoms))
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return pc.binary_join(column.cast(pa.list_(pa.string())), ", ")
    text = column.cast(pa.string())
    if field_type == "double":  # xsd:double spells the specials INF, -INF and NaN
        for python, xsd in (("-inf", "-INF"), ("inf", "INF"), ("nan", "NaN")):
            text = pc.if_else(pc.equal(text, python), xsd, text)
    return text


def concat(parts: pa.Array) -> bytes:
    """All the strings of an array, one after the other."""
    whole = pa.ListArray.from_arrays(pa.array([0, len(parts)], pa.int32()), parts)
    return pc.binary_join(whole, "")[0].as_buffer().to_pybytes()


def turtle_string(arr: pa.Array) -> pa.Array:
    """A Turtle "…" literal body: backslash, quote and line breaks escaped, other controls as \\u."""
    for char, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r")):
        arr = pc.replace_substring(arr, char, escaped)
    if pc.any(pc.match_substring_regex(arr, CONTROLS)).as_py():
        for code in [*range(0x20), 0x7F]:
            arr = pc.replace_substring(arr, chr(code), f"\\u{code:04X}")
    return arr


def xml_text(arr: pa.Array) -> tuple[pa.Array, int]:
    """XML character data, and how many values lost characters XML 1.0 cannot hold."""
    illegal = pc.match_substring_regex(arr, CONTROLS.replace("\\x7f", "") + "|\ufffe|\uffff")
    lost = pc.sum(illegal).as_py() or 0
    if lost:
        arr = pc.replace_substring_regex(arr, CONTROLS.replace("\\x7f", "") + "|\ufffe|\uffff", "")
    for char, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")):
        arr = pc.replace_substring(arr, char, escaped)
    return arr, lost


def xml_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


class RdfWriter(Writer):
    """What every syntax shares: IRIs checked up front, subjects and lexical forms per batch."""

    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        dataset = self.options.get("stem")
        scope = f"urn:exportd:dataset:{quote(dataset, safe='')}:" if dataset else "urn:exportd:"
        self.base = self._iri_option("base", scope + "record:")
        self.namespace = self._iri_option("namespace", scope + "field:")
        self.predicates = [self.namespace + quote(f.name, safe="") for f in self.fields]
        self.datatypes = [DATATYPES.get(f.type) for f in self.fields]
        self.seen = 0
        out.write(self.header().encode())

    def _iri_option(self, name: str, default: str) -> str:
        value = self.options.get(name) or default
        if not value or BAD_IRI.search(value) or ":" not in value:
            raise OptionError(f"option {name!r} must be an absolute IRI without spaces or <>\"{{}}|^`\\, not {value!r}")
        return value

    def header(self) -> str:
        raise NotImplementedError

    def records(self, subjects: pa.Array, values: list[pa.Array]) -> bytes:
        """The text of these records (none of them all null)."""
        raise NotImplementedError

    def write(self, batch: pa.RecordBatch) -> None:
        numbers = pa.array(range(self.seen + 1, self.seen + batch.num_rows + 1), pa.int64())
        self.seen += batch.num_rows
        values = [lexical_forms(batch.column(i), f.type, self.options["timezone"]) for i, f in enumerate(self.fields)]
        some = pa.array([False] * batch.num_rows, pa.bool_())  # records with at least one triple
        for v in values:
            some = pc.or_(some, pc.is_valid(v))
        kept = pc.sum(some).as_py() or 0
        self.skipped += batch.num_rows - kept
        if kept:
            subjects = pc.binary_join_element_wise(self.base, numbers.filter(some).cast(pa.string()), "")
            self.out.write(self.records(subjects, [v.filter(some) for v in values]))


class TurtleWriter(RdfWriter):
    """`<subject> f:name "value"^^xsd:type ; … .` — one statement a record."""

    def header(self) -> str:
        self.terms = [f"f:{p[len(self.namespace):]}" if TURTLE_LOCAL.fullmatch(p[len(self.namespace):]) else f"<{p}>"
                      for p in self.predicates]
        self.types = [dt and dt.replace(XSD, "xsd:").replace(GEO, "geo:") for dt in self.datatypes]
        return f"@prefix xsd: <{XSD}> .\n@prefix geo: <{GEO}> .\n@prefix f: <{self.namespace}> .\n\n"

    def records(self, subjects: pa.Array, values: list[pa.Array]) -> bytes:
        pairs = []
        for term, datatype, lexical in zip(self.terms, self.types, values):
            suffix = f'"^^{datatype}' if datatype else '"'
            text = lexical if datatype else turtle_string(lexical)  # typed forms need no escaping
            pairs.append(pc.binary_join_element_wise(f'{term} "', text, suffix, ""))
        body = pc.binary_join_element_wise(*pairs, " ;\n    ", null_handling="skip")
        return concat(pc.binary_join_element_wise("<", subjects, ">\n    ", body, " .\n\n", ""))

    def close(self) -> None:
        pass  # Turtle has no footer


class RdfXmlWriter(RdfWriter):
    """`<rdf:Description rdf:about="…"><p:name rdf:datatype="…">value</p:name>…`"""

    def header(self) -> str:
        prefixes: dict[str, str] = {}
        self.tags = []
        for name, iri in zip((f.name for f in self.fields), self.predicates):
            local = XML_LOCAL_AT_END.search(iri)
            if local is None:
                raise FormatNotApplicable(f"format 'rdfxml' cannot name a property for field {name!r} ({iri})")
            prefix = prefixes.setdefault(iri[:local.start()], f"p{len(prefixes)}")
            self.tags.append(f"{prefix}:{local.group()}")
        declarations = "".join(f'\n  xmlns:{p}="{xml_attr(ns)}"' for ns, p in prefixes.items())
        return f'<?xml version="1.0" encoding="utf-8"?>\n<rdf:RDF xmlns:rdf="{RDF}"{declarations}>\n'

    def records(self, subjects: pa.Array, values: list[pa.Array]) -> bytes:
        elements, lost = [], 0
        for tag, datatype, lexical in zip(self.tags, self.datatypes, values):
            text, dropped = (lexical, 0) if datatype else xml_text(lexical)  # typed forms need no escaping
            lost += dropped
            opening = f'    <{tag} rdf:datatype="{datatype}">' if datatype else f"    <{tag}>"
            elements.append(pc.binary_join_element_wise(opening, text, f"</{tag}>", ""))
        if lost:
            self.warnings.append(f"{lost} value(s) lost characters XML 1.0 cannot hold")
        body = pc.binary_join_element_wise(*elements, "\n", null_handling="skip")
        subjects = pc.replace_substring(subjects, "&", "&amp;") if "&" in self.base else subjects
        about = pc.binary_join_element_wise('  <rdf:Description rdf:about="', subjects, '">\n', "")
        return concat(pc.binary_join_element_wise(about, body, "\n  </rdf:Description>\n", ""))

    def close(self) -> None:
        self.out.write(b"</rdf:RDF>\n")


class JsonLdWriter(RdfWriter):
    """`{"@context": …, "@graph": [ {"@id": …, "<property>": {"@value", "@type"}}, … ]}`"""

    def header(self) -> str:
        self.first = True
        return '{"@context": {"xsd": "%s", "geo": "%s"},\n "@graph": [' % (XSD, GEO)

    def records(self, subjects: pa.Array, values: list[pa.Array]) -> bytes:
        columns: list[list[Any]] = []
        for datatype, lexical in zip(self.datatypes, values):
            texts = lexical.to_pylist()
            columns.append(texts if datatype is None else
                           [None if t is None else {"@value": t, "@type": datatype} for t in texts])
        parts = []
        for subject, row in zip(subjects.to_pylist(), zip(*columns)):
            node = {"@id": subject, **{p: v for p, v in zip(self.predicates, row) if v is not None}}
            parts.append(b"\n  " if self.first else b",\n  ")
            parts.append(orjson.dumps(node))
            self.first = False
        return b"".join(parts)

    def close(self) -> None:
        self.out.write(b"]}\n" if self.first else b"\n]}\n")


IRI_OPTIONS = (
    Option("base", str, None, description="IRI each record's number is appended to "
           "(default: urn:exportd:dataset:<dataset id>:record:)."),
    Option("namespace", str, None, description="IRI each field's name is appended to, for properties "
           "(default: urn:exportd:dataset:<dataset id>:field:)."),
)


def _rdf_format(name: str, extension: str, media_type: str, writer: type[RdfWriter], description: str) -> Format:
    return Format(name=name, extension=extension, media_type=media_type, writer=writer,
                  options=IRI_OPTIONS, description=description)


TURTLE = _rdf_format("turtle", "ttl", "text/turtle", TurtleWriter, "RDF in Turtle: a resource per record.")
N3 = _rdf_format("n3", "n3", "text/n3", TurtleWriter, "RDF in Notation3 (written as Turtle, which N3 extends).")
RDFXML = _rdf_format("rdfxml", "rdf", "application/rdf+xml", RdfXmlWriter, "RDF/XML: a resource per record.")
JSONLD = _rdf_format("jsonld", "jsonld", "application/ld+json", JsonLdWriter, "JSON-LD: a resource per record.")
FORMATS = (JSONLD, TURTLE, N3, RDFXML)
