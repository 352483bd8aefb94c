"""The RDF writers, each read back with rdflib and compared with the sample tables."""
from __future__ import annotations

import gzip
import math
from datetime import timezone
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pytest
import rdflib
import rdflib.compare
import shapely
from rdflib import XSD, Literal, URIRef

from domain.fields import fields_of
from formats import REGISTRY
from formats.base import FormatNotApplicable, OptionError
from tests.formats.samples import awkward_table, empty_table, null_table, write

SYNTAXES = {"turtle": "turtle", "n3": "n3", "rdfxml": "xml", "jsonld": "json-ld"}
MEDIA_TYPES = {"turtle": "text/turtle", "n3": "text/n3", "rdfxml": "application/rdf+xml", "jsonld": "application/ld+json"}
WKT = URIRef("http://www.opengis.net/ont/geosparql#wktLiteral")
TYPES = {"int": XSD.integer, "double": XSD.double, "boolean": XSD.boolean, "date": XSD.date,
         "datetime": XSD.dateTime, "geo_point_2d": WKT, "geo_shape": WKT, "text": None}

each_syntax = pytest.mark.parametrize("name", SYNTAXES)
# rdflib's own N3 and JSON-LD parsers build a ConjunctiveGraph, which rdflib itself deprecates.
pytestmark = [pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Dataset.default_context is deprecated:DeprecationWarning")]


def parse(name: str, data: bytes) -> rdflib.Graph:
    return rdflib.Graph().parse(data=data, format=SYNTAXES[name])


def expected_geometry(field_type: str, value: Any) -> shapely.Geometry:
    if field_type == "geo_point_2d":
        return shapely.Point(value["lon"], value["lat"])
    return shapely.from_wkb(value)


def assert_graph_is_table(graph: rdflib.Graph, table: pa.Table, base: str = "urn:exportd:record:",
                          namespace: str = "urn:exportd:field:") -> None:
    types = {f.name: f.type for f in fields_of(table.schema)}
    triples = 0
    for number, row in enumerate(table.to_pylist(), start=1):
        subject = URIRef(f"{base}{number}")
        for name, value in row.items():
            objects = list(graph.objects(subject, URIRef(namespace + quote(name, safe=""))))
            if value is None:
                assert objects == [], (number, name)
                continue
            triples += 1
            assert len(objects) == 1, (number, name)
            literal = objects[0]
            assert isinstance(literal, Literal) and literal.datatype == TYPES[types[name]], (number, name)
            if types[name] in ("geo_point_2d", "geo_shape"):
                assert shapely.equals_exact(shapely.from_wkt(str(literal)), expected_geometry(types[name], value))
            else:
                assert literal.toPython() == value and type(literal.toPython()) is type(value), (number, name)
    assert len(graph) == triples


@each_syntax
def test_registered_with_its_media_type(name):
    assert REGISTRY.get(name).media_type == MEDIA_TYPES[name]


@each_syntax
def test_every_record_and_value_round_trips(name):
    data, writer = write(name, awkward_table())
    assert_graph_is_table(parse(name, data), awkward_table())
    assert writer.skipped == 1 and writer.warnings == []  # the record whose values are all null


@each_syntax
def test_one_batch_or_many_give_the_same_graph(name):
    one, _ = write(name, awkward_table(), batch_size=100)
    many, _ = write(name, awkward_table(), batch_size=1)
    assert rdflib.compare.isomorphic(parse(name, one), parse(name, many))


@each_syntax
def test_empty_and_null_tables(name):
    data, writer = write(name, empty_table())
    assert len(parse(name, data)) == 0 and writer.skipped == 0
    data, writer = write(name, null_table())
    assert len(parse(name, data)) == 0 and writer.skipped == 2


@each_syntax
def test_datetimes_carry_the_offset_of_the_time_zone(name):
    data, _ = write(name, awkward_table(), {"timezone": "Europe/Paris"})
    assert b"2024-06-21T20:30:00+02:00" in data
    assert_graph_is_table(parse(name, data), awkward_table())  # the same instants


@each_syntax
def test_base_and_namespace_options(name):
    options = {"base": "http://example.org/events?a=1&id=", "namespace": "http://example.org/def#", "use_labels": True}
    data, _ = write(name, awkward_table(), options)
    # properties are named after field names, never labels, which change and have spaces
    assert_graph_is_table(parse(name, data), awkward_table(), "http://example.org/events?a=1&id=", "http://example.org/def#")


@each_syntax
def test_field_names_that_are_not_xml_names(name):
    table = pa.table({"a b": ["x"], "été": ["y"], "n-1.5": ["z"]})
    data, _ = write(name, table)
    assert_graph_is_table(parse(name, data), table, namespace="urn:exportd:field:")


def test_rdfxml_refuses_a_property_it_cannot_spell():
    with pytest.raises(FormatNotApplicable, match="'2019'"):
        write("rdfxml", pa.table({"2019": [1]}))
    data, _ = write("turtle", pa.table({"2019": [1]}))
    assert_graph_is_table(parse("turtle", data), pa.table({"2019": [1]}))


@each_syntax
def test_awkward_text_is_escaped(name):
    texts = ['back\\slash "quoted"', "crlf\r\nlf\nend", "tab\tand <tag> & ampersand", "bell\x07", "ünï 東京 😀"]
    table = pa.table({"text": texts, "n": pa.array([float("nan"), float("inf"), float("-inf"), 1e-7, 1e300])})
    data, writer = write(name, table)
    graph = parse(name, data)
    got = [str(graph.value(URIRef(f"urn:exportd:record:{i}"), URIRef("urn:exportd:field:text"))) for i in range(1, 6)]
    if name == "rdfxml":  # XML 1.0 cannot hold U+0007 at all
        assert got == texts[:3] + ["bell"] + texts[4:]
        assert writer.warnings == ["1 value(s) lost characters XML 1.0 cannot hold"]
    else:
        assert got == texts and writer.warnings == []
    numbers = [graph.value(URIRef(f"urn:exportd:record:{i}"), URIRef("urn:exportd:field:n")) for i in range(1, 6)]
    assert all(n.datatype == XSD.double for n in numbers)
    assert math.isnan(numbers[0].toPython()) and b"NaN" in data and b"-INF" in data
    assert [n.toPython() for n in numbers[1:]] == [math.inf, -math.inf, 1e-7, 1e300]


@each_syntax
def test_compressed(name):
    data, _ = write(name, awkward_table(), {"compressed": True})
    assert_graph_is_table(parse(name, gzip.decompress(data)), awkward_table())


def test_bad_iris_are_refused():
    with pytest.raises(OptionError, match="base"):
        write("turtle", awkward_table(), {"base": "not an iri"})
    with pytest.raises(OptionError, match="namespace"):
        write("jsonld", awkward_table(), {"namespace": "urn:x<y>"})
    with pytest.raises(OptionError, match="unknown option"):
        write("rdfxml", awkward_table(), {"prefix": "urn:x:"})


def test_datetimes_are_utc_by_default():
    data, _ = write("turtle", awkward_table())
    graph = parse("turtle", data)
    starts = graph.value(URIRef("urn:exportd:record:1"), URIRef("urn:exportd:field:starts_at")).toPython()
    assert starts.utcoffset().total_seconds() == 0 and starts.tzinfo is not None
    assert starts == awkward_table().column("starts_at")[0].as_py().astimezone(timezone.utc)


@each_syntax
def test_records_and_properties_are_scoped_by_the_dataset(name):
    """Two datasets' records never share an IRI, nor their fields a property."""
    import io

    from domain.fields import fields_of
    from formats import REGISTRY

    graphs = []
    for dataset in ("events", "places"):
        fmt, table = REGISTRY.get(name), awkward_table()
        fields, out = fields_of(table.schema), io.BytesIO()
        writer = fmt.open(out, table.schema, fields, fmt.parse_options({}, fields), name=dataset)
        writer.write(table.to_batches()[0])
        writer.close()
        graphs.append(parse(name, out.getvalue()))
        assert_graph_is_table(graphs[-1], table, f"urn:exportd:dataset:{dataset}:record:", f"urn:exportd:dataset:{dataset}:field:")
    assert not set(graphs[0].subjects()) & set(graphs[1].subjects())
    assert not set(graphs[0].predicates()) & set(graphs[1].predicates())
