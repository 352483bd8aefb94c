"""where syntax trees to pyarrow.compute Expressions, which the Parquet scan evaluates batch by
batch (and uses for row-group pruning where it can).

Nulls follow SQL: a comparison with a null value is unknown and the record is left out, also
under NOT (full text and search() are never unknown: a null field just does not contain the words). Text matching (LIKE, full text, search, startswith) ignores case. LIKE's `*` and `%`
match any run of characters and the pattern must match the whole value; a pattern with no
wildcard matches values that contain it, as ODSQL's phrase match does."""
from __future__ import annotations

import math
from datetime import timezone
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import shapely

from domain.fields import DATETIME, Field
from domain.odsql import ast, geometry
from domain.odsql import values as literals
from domain.odsql.cost import all_of, any_of
from domain.odsql.errors import ODSQLError
from domain.odsql.select import check, project
from domain.odsql.values import as_number, operand, shifted

EARTH_RADIUS_M = 6_371_008.8
METRES = {"m": 1.0, "km": 1000.0, "mi": 1609.344, "yd": 0.9144, "ft": 0.3048, "cm": 0.01, "mm": 0.001}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_COMPARE: dict[str, Callable[[pc.Expression, object], pc.Expression]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def one_of(column: pc.Expression, values: pa.Array) -> pc.Expression:
    """`column` IN `values` with SQL's nulls, as the ORed equalities it replaces: unknown (null)
    where the column is null, so that NOT leaves those records out too."""
    return column.isin(values) | (column.is_null() & pc.scalar(pa.scalar(None, pa.bool_())))


def known(value: pc.Expression) -> pc.Expression:
    """`value` with unknown (null) read as false, so that NOT keeps the records it did not match."""
    return pc.coalesce(value, pc.scalar(False))


class Compiler:
    """Compiles the conditions of one clause against a dataset's fields."""

    def __init__(self, fields: Sequence[Field], tz: timezone | ZoneInfo, clause: str = "where",
                 timezone_name: str = "UTC") -> None:
        self.fields = {f.name: f for f in fields}
        self.tz = tz
        self.clause = clause
        self.timezone_name = timezone_name

    def error(self, problem: str, node: ast.Node) -> ODSQLError:
        return ODSQLError(problem, node.pos, self.clause)

    def field(self, ref: ast.Node, *types: str) -> Field:
        """The field `ref` names, checked to be of one of `types` when given."""
        if not isinstance(ref, ast.FieldRef):
            raise self.error("expected a field name", ref)
        field = self.fields.get(ref.name)
        if field is None:
            raise self.error(f"unknown field '{ref.name}'", ref)
        if types and field.type not in types:
            raise self.error(f"'{ref.name}' is a {field.type} field; expected {' or '.join(types)}", ref)
        return field

    def compile(self, node: ast.Node) -> pc.Expression:
        """The Expression of a condition; Arrow's own errors (overflow, unsupported types) come
        out as an ODSQLError at the node."""
        method = getattr(self, "_" + type(node).__name__.lower(), None)
        if method is None:
            raise self.error("expected a condition", node)
        try:
            return method(node)
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
            raise self.error(f"cannot evaluate this condition ({exc})", node) from None

    def _boolop(self, node: ast.BoolOp) -> pc.Expression:
        if node.op == "and":
            return all_of(self.compile(item) for item in node.items)
        # OR-ed equalities of one field become one set lookup, the rest a balanced tree
        parts: list[pc.Expression] = []
        equal: dict[tuple[str, pa.DataType], list[pa.Scalar]] = {}
        for item in node.items:
            pair = self.equality(item)
            if pair is None:
                parts.append(self.compile(item))
            else:
                equal.setdefault((pair[0], pair[1].type), []).append(pair[1])
        for (name, kind), values in equal.items():
            column = pc.field(name)
            parts.append(column == values[0] if len(values) == 1 else one_of(column, pa.array([v.as_py() for v in values], kind)))
        return any_of(parts)

    def equality(self, node: ast.Node) -> tuple[str, pa.Scalar] | None:
        """(field name, value) of a `field = literal` comparison (either way round) that compares
        the stored column itself; None for any other node."""
        if not (isinstance(node, ast.Compare) and node.op == "="):
            return None
        ref, value = (node.left, node.right) if isinstance(node.left, ast.FieldRef) else (node.right, node.left)
        if not (isinstance(ref, ast.FieldRef) and isinstance(value, ast.Literal)) or value.kind == "null":
            return None
        try:
            column, scalar = operand(self.field(ref), value, self.tz, self.clause)
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
            raise self.error(f"cannot evaluate this condition ({exc})", node) from None
        if not column.equals(pc.field(ref.name)) or (isinstance(scalar.as_py(), float) and math.isnan(scalar.as_py())):
            return None  # a cast column, or NaN, which a set lookup would match
        return ref.name, scalar

    def _not(self, node: ast.Not) -> pc.Expression:
        return ~self.compile(node.operand)

    def _literal(self, node: ast.Literal) -> pc.Expression:
        if node.kind != "bool":
            raise self.error("expected a condition", node)
        return pc.scalar(bool(node.value))

    def _boolfield(self, node: ast.BoolField) -> pc.Expression:
        return pc.field(self.field(node.target, "boolean").name)

    def _isnull(self, node: ast.IsNull) -> pc.Expression:
        return pc.field(self.field(node.target).name).is_null()

    def _compare(self, node: ast.Compare) -> pc.Expression:
        left, right, op = node.left, node.right, node.op
        if isinstance(left, (ast.Literal, ast.Now)) and not isinstance(right, (ast.Literal, ast.Now)):
            left, right, op = right, left, _FLIPPED[op]
        if isinstance(left, (ast.DatePart, ast.DateFormat)):
            return self.computed(left, right, op, node)
        if isinstance(right, ast.Now):
            right = self.now_literal(left, right)
        if isinstance(left, ast.FieldRef) and isinstance(right, ast.FieldRef):
            return _COMPARE[op](*self.comparable(self.field(left), self.field(right), node))
        if not isinstance(left, ast.FieldRef):
            raise self.error("a comparison needs a field", node)
        field = self.field(left)
        if isinstance(right, ast.Literal) and right.kind == "null" and op in ("=", "!="):
            column = pc.field(field.name)
            return column.is_null() if op == "=" else column.is_valid()
        column, value = operand(field, right, self.tz, self.clause)
        return _COMPARE[op](column, value)

    def computed(self, left: ast.DatePart | ast.DateFormat, right: ast.Node, op: str, node: ast.Node) -> pc.Expression:
        """year(f) = 2024, date_format(f, 'yyyy-MM') = '2024-06', … : the part as the select
        computes it (in the query's timezone) against a number, or a text for date_format."""
        column, value = self.part_column(left), self.part_scalar(left, right)
        if value.type == pa.float64():
            column = column.cast(pa.float64())
        return _COMPARE[op](column, value)

    def part_column(self, part: ast.DatePart | ast.DateFormat) -> pc.Expression:
        check(part, self.fields, self.clause)
        return project(part, self.fields, self.timezone_name)

    def part_scalar(self, part: ast.DatePart | ast.DateFormat, value: ast.Node) -> pa.Scalar:
        """The value a date part is compared with: an int (a double when it has decimals), or a
        text for date_format."""
        if not isinstance(value, ast.Literal) or value.kind == "null":
            raise self.error(f"{ast.render(part)} compares with a literal value", value)
        if isinstance(part, ast.DateFormat):
            if value.kind not in ("string", "number"):
                raise self.error(f"{ast.render(part)} compares with a text", value)
            return pa.scalar(str(value.value), pa.string())
        number = as_number(str(value.value)) if value.kind in ("number", "string") else None
        if number is None:
            raise self.error(f"{part.part}() compares with a number", value)
        if isinstance(number, int) and -2**63 <= number < 2**63:
            return pa.scalar(number, pa.int64())
        return pa.scalar(float(number), pa.float64())

    def now_literal(self, left: ast.Node, now: ast.Now) -> ast.Literal:
        """now(…) as the instant literal it stands for; only date and datetime fields take it."""
        if isinstance(left, ast.FieldRef) and self.field(left).type not in ("date", "datetime"):
            raise self.error(f"now() compares with a date or datetime field, not the {self.field(left).type} "
                             f"field '{left.name}'", now)
        try:
            moment = shifted(literals.clock(), now.shifts, self.tz)
        except (ValueError, OverflowError) as exc:
            raise self.error(f"now() cannot shift so far ({exc})", now) from None
        return ast.Literal("string", moment.isoformat(), pos=now.pos)

    def comparable(self, a: Field, b: Field, node: ast.Node) -> tuple[pc.Expression, pc.Expression]:
        """Two fields as Expressions of a type they can be compared in."""
        family = {"int": "number", "double": "number", "date": "time", "datetime": "time"}
        kind_a, kind_b = family.get(a.type, a.type), family.get(b.type, b.type)
        if kind_a != kind_b or kind_a in ("geo_point_2d", "geo_shape"):
            raise self.error(f"cannot compare {a.type} field '{a.name}' with {b.type} field '{b.name}'", node)
        left, right = pc.field(a.name), pc.field(b.name)
        if kind_a == "time" and a.type != b.type:
            left, right = left.cast(DATETIME), right.cast(DATETIME)
        return left, right

    def _inlist(self, node: ast.InList) -> pc.Expression:
        if isinstance(node.target, ast.DatePart):  # year(d) IN (2024, 2025): one set lookup
            column = self.part_column(node.target)
            scalars = [self.part_scalar(node.target, value) for value in node.values]
            if all(v.type == pa.int64() for v in scalars):
                return one_of(column, pa.array([v.as_py() for v in scalars], pa.int64()))
            return one_of(column.cast(pa.float64()), pa.array([float(v.as_py()) for v in scalars], pa.float64()))
        field = self.field(node.target)
        pairs = [operand(field, value, self.tz, self.clause) for value in node.values]
        column, first = pairs[0]
        if all(c.equals(column) and v.type == first.type for c, v in pairs):
            return column.isin(pa.array([v.as_py() for _, v in pairs], first.type))
        return any_of(c == v for c, v in pairs)

    def _inrange(self, node: ast.InRange) -> pc.Expression:
        low_node = self.now_literal(node.target, node.low) if isinstance(node.low, ast.Now) else node.low
        high_node = self.now_literal(node.target, node.high) if isinstance(node.high, ast.Now) else node.high
        if isinstance(node.target, ast.DatePart):
            above = self.computed(node.target, low_node, ">=" if node.low_inclusive else ">", node)
            return above & self.computed(node.target, high_node, "<=" if node.high_inclusive else "<", node)
        field = self.field(node.target)
        low_column, low = operand(field, low_node, self.tz, self.clause)
        high_column, high = operand(field, high_node, self.tz, self.clause)
        above = low_column >= low if node.low_inclusive else low_column > low
        below = high_column <= high if node.high_inclusive else high_column < high
        return above & below

    def _like(self, node: ast.Like) -> pc.Expression:
        field = self.field(node.target, "text")
        escaped = node.pattern.replace("\\", "\\\\").replace("_", "\\_")
        if "*" in escaped or "%" in escaped:
            pattern = escaped.replace("*", "%")
        else:
            pattern = f"%{escaped}%"
        return pc.match_like(pc.field(field.name), pattern, ignore_case=True)

    def _fulltext(self, node: ast.FullText) -> pc.Expression:
        text_fields = [f.name for f in self.fields.values() if f.type == "text"]
        return self.words_in(text_fields, node.text)

    @staticmethod
    def words_in(names: Sequence[str], text: str) -> pc.Expression:
        """Records in which each word of `text` is found in at least one of the `names` fields."""
        found = [any_of(known(pc.match_substring(pc.field(name), word, ignore_case=True)) for name in names)
                 for word in text.split()]
        return all_of(f if f is not None else pc.scalar(False) for f in found) if found else pc.scalar(True)

    def _call(self, node: ast.Call) -> pc.Expression:
        return getattr(self, "_call_" + node.name)(node)

    def arity(self, node: ast.Call, count: int) -> None:
        if len(node.args) != count:
            raise self.error(f"{node.name}() takes {count} arguments, not {len(node.args)}", node)

    def string_arg(self, node: ast.Call, arg: ast.Node) -> str:
        if not (isinstance(arg, ast.Literal) and arg.kind == "string"):
            raise self.error(f"{node.name}() expects a string here", arg)
        return str(arg.value)

    def number_arg(self, node: ast.Call, arg: ast.Node) -> float:
        if not (isinstance(arg, ast.Literal) and arg.kind == "number"):
            raise self.error(f"{node.name}() expects a number here", arg)
        number = float(str(arg.value))
        if not math.isfinite(number):
            raise self.error(f"{node.name}() expects a finite number here", arg)
        return number

    def _call_search(self, node: ast.Call) -> pc.Expression:
        if len(node.args) < 2:
            raise self.error("search() takes one or more fields (or *) and a string", node)
        names: list[str] = []
        for arg in node.args[:-1]:
            if isinstance(arg, ast.Star):
                names.extend(f.name for f in self.fields.values() if f.type == "text")
            else:
                names.append(self.field(arg, "text").name)
        return self.words_in(names, self.string_arg(node, node.args[-1]))

    def _call_startswith(self, node: ast.Call) -> pc.Expression:
        self.arity(node, 2)
        field = self.field(node.args[0], "text")
        return pc.starts_with(pc.field(field.name), self.string_arg(node, node.args[1]), ignore_case=True)

    def _call_in_bbox(self, node: ast.Call) -> pc.Expression:
        """in_bbox(field, lat1, lon1, lat2, lon2): the two corners in either order, bounds included."""
        self.arity(node, 5)
        field = self.field(node.args[0], "geo_point_2d")
        lat1, lon1, lat2, lon2 = (self.number_arg(node, arg) for arg in node.args[1:])
        lat, lon = pc.field(field.name, "lat"), pc.field(field.name, "lon")
        return ((lat >= min(lat1, lat2)) & (lat <= max(lat1, lat2))
                & (lon >= min(lon1, lon2)) & (lon <= max(lon1, lon2)))

    def _call_within_distance(self, node: ast.Call) -> pc.Expression:
        """within_distance(field, geom'POINT(lon lat)', 10km): great-circle (haversine) distance
        on a sphere of the Earth's mean radius, with a latitude band first for pruning."""
        self.arity(node, 3)
        field = self.field(node.args[0], "geo_point_2d")
        lon0, lat0 = self.point_arg(node, node.args[1])
        distance = node.args[2]
        if isinstance(distance, ast.Distance):
            metres = distance.value * METRES[distance.unit]
        else:
            metres = self.number_arg(node, distance)
        lat, lon = pc.field(field.name, "lat"), pc.field(field.name, "lon")
        band = math.degrees(metres / EARTH_RADIUS_M)
        rad = math.pi / 180
        half_dlat = pc.sin(pc.multiply(pc.subtract(lat, lat0), rad / 2))
        half_dlon = pc.sin(pc.multiply(pc.subtract(lon, lon0), rad / 2))
        h = pc.add(pc.multiply(half_dlat, half_dlat),
                   pc.multiply(pc.multiply(pc.cos(pc.multiply(lat, rad)), math.cos(lat0 * rad)),
                               pc.multiply(half_dlon, half_dlon)))
        d = pc.multiply(pc.asin(pc.min_element_wise(pc.sqrt(h), 1.0)), 2 * EARTH_RADIUS_M)
        return (lat >= lat0 - band) & (lat <= lat0 + band) & (d <= metres)

    def _call_distance(self, node: ast.Call) -> pc.Expression:
        """v2.0's name of within_distance()."""
        return self._call_within_distance(node)

    def _call_intersects(self, node: ast.Call) -> pc.Expression:
        return self.relation(node, "intersects")

    def _call_within(self, node: ast.Call) -> pc.Expression:
        return self.relation(node, "within")

    def _call_disjoint(self, node: ast.Call) -> pc.Expression:
        return self.relation(node, "disjoint")

    def _call_polygon(self, node: ast.Call) -> pc.Expression:
        """v2.0's polygon(geo_point_field, geom'POLYGON(…)'): the points within the polygon."""
        self.arity(node, 2)
        self.field(node.args[0], "geo_point_2d")
        return self.relation(node, "within")

    def _call_geometry(self, node: ast.Call) -> pc.Expression:
        """v2.0's geometry(field, geom'…', INTERSECTS | DISJOINT | WITHIN)."""
        self.arity(node, 3)
        mode = node.args[2]
        how = mode.name.lower() if isinstance(mode, ast.FieldRef) else str(getattr(mode, "value", "")).lower()
        if how not in geometry.RELATIONS:
            raise self.error("geometry() takes INTERSECTS, DISJOINT or WITHIN as its third argument", mode)
        return self.relation(ast.Call(node.name, node.args[:2], pos=node.pos), how)

    def relation(self, node: ast.Call, how: str) -> pc.Expression:
        self.arity(node, 2)
        field = self.field(node.args[0], "geo_point_2d", "geo_shape")
        return geometry.relation(field.name, field.type, self.geometry_arg(node, node.args[1]), how)

    def geometry_arg(self, node: ast.Call, arg: ast.Node):
        if not (isinstance(arg, ast.Literal) and arg.kind in ("geom", "string")):
            raise self.error(f"{node.name}() expects a geometry here, as geom'POLYGON((lon lat, …))'", arg)
        try:
            return geometry.parse(str(arg.value))
        except geometry.BadGeometry as exc:
            raise self.error(f"{node.name}(): {exc}", arg) from None

    def point_arg(self, node: ast.Call, arg: ast.Node) -> tuple[float, float]:
        """(lon, lat) of a geom'POINT(lon lat)' (WKT or GeoJSON) argument."""
        if not (isinstance(arg, ast.Literal) and arg.kind in ("geom", "string")):
            raise self.error(f"{node.name}() expects geom'POINT(lon lat)' here", arg)
        text = str(arg.value).strip()
        try:
            geometry = shapely.from_geojson(text) if text.startswith("{") else shapely.from_wkt(text)
        except Exception:  # shapely raises several kinds of error for unreadable text
            geometry = None
        if geometry is None or geometry.geom_type != "Point" or geometry.is_empty:
            raise self.error(f"{node.name}() expects a point, as geom'POINT(lon lat)'", arg)
        return float(geometry.x), float(geometry.y)
