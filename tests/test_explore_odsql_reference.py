"""The reference's ODSQL functions through the Explore routes: aggregates with median,
percentile, count(distinct) and envelope grouped by ranges, records filtered by geometry and by
now(), a dataset of shapes, and the errors as 400s naming the clause and position."""
from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timezone

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from domain import demo
from tests.conftest import load_dataset
from tests.test_explore import V2, V21, get_json

ROWS = demo.table().to_pylist()
PARIS = shapely.box(2.25, 48.80, 2.42, 48.91)


def quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def test_aggregates_by_static_range(client, demo_dataset):
    body = await get_json(client, f"{V21}/datasets/demo-events/aggregates", params={
        "select": "median(price) as m, percentile(attendance, 90) as p90, count(distinct city) as cities, count(*) as n",
        "group_by": "range(attendance, *, 5000, 20000, *) as band", "limit": "10"})
    bands = {"[*, 5000[": lambda a: a < 5000, "[5000, 20000[": lambda a: 5000 <= a < 20000, "[20000, *[": lambda a: a >= 20000}
    assert [r["band"] for r in body["results"]] == list(bands)
    for result in body["results"]:
        rows = [r for r in ROWS if bands[result["band"]](r["attendance"])]
        assert result["n"] == len(rows) > 0
        assert result["m"] == statistics.median(r["price"] for r in rows)
        assert abs(result["p90"] - quantile([r["attendance"] for r in rows], 0.9)) < 1e-6
        assert result["cities"] == len({r["city"] for r in rows})


async def test_aggregates_by_step_and_envelope_as_geojson(client, demo_dataset):
    body = await get_json(client, f"{V21}/datasets/demo-events/aggregates", params={
        "select": "count(*) as n, envelope(geo_point_2d) as box", "group_by": "range(price, 25) as p", "order_by": "p"})
    expected = Counter(int(r["price"] // 25) * 25 for r in ROWS)
    assert [(r["p"], r["n"]) for r in body["results"]] == sorted(expected.items())
    first = body["results"][0]
    points = [(r["geo_point_2d"]["lon"], r["geo_point_2d"]["lat"]) for r in ROWS
              if r["price"] < 25 and r["geo_point_2d"] is not None]
    assert first["box"]["type"] == "Polygon"
    assert shapely.equals(shapely.geometry.shape(first["box"]), shapely.envelope(shapely.MultiPoint(points)))


async def test_records_filtered_by_geometry_and_now(client, demo_dataset):
    body = await get_json(client, f"{V2}/datasets/demo-events/records", params={
        "where": f"intersects(geo_point_2d, geom'{shapely.to_geojson(PARIS)}')", "limit": "0"})
    inside = [r for r in ROWS if r["geo_point_2d"] and PARIS.intersects(shapely.Point(r["geo_point_2d"]["lon"],
                                                                                      r["geo_point_2d"]["lat"]))]
    assert body["total_count"] == len(inside) > 0
    now = datetime.now(timezone.utc)
    years = 3
    body = await get_json(client, f"{V2}/datasets/demo-events/records", params={
        "where": f"starts_at >= now(years=-{years}) AND year(starts_at) != 2024", "limit": "0"})
    assert body["total_count"] == sum(1 for r in ROWS if r["starts_at"] >= now.replace(year=now.year - years)
                                      and r["starts_at"].year != 2024)


async def test_a_dataset_of_shapes(client, settings, tmp_path):
    shapes = [shapely.box(2 + i * 0.1, 48, 2.05 + i * 0.1, 48.05) for i in range(10)] + [None]
    path = tmp_path / "parcels.parquet"
    pq.write_table(pa.table({"parcel": list(range(11)),
                             "shape": pa.array([shapely.to_wkb(s) if s else None for s in shapes], pa.binary())}), path)
    await load_dataset(settings, path, "parcels", title="Parcels")
    query = shapely.box(2.12, 47.9, 2.36, 48.2)
    for where, keep in ((f"within(shape, geom'{query.wkt}')", lambda s: s.within(query)),
                        (f"intersects(shape, geom'{query.wkt}')", query.intersects),
                        (f"NOT disjoint(shape, geom'{query.wkt}')", lambda s: not query.disjoint(s))):
        body = await get_json(client, f"{V2}/datasets/parcels/records", params={"where": where, "select": "parcel",
                                                                               "order_by": "parcel"})
        assert [r["parcel"] for r in body["results"]] == [i for i, s in enumerate(shapes) if s and keep(s)], where
    assert 0 < sum(1 for s in shapes if s and s.within(query)) < sum(1 for s in shapes if s and query.intersects(s))


async def test_errors_are_400s_naming_clause_and_position(client, demo_dataset):
    for path, params, where in [
        ("aggregates", {"select": "percentile(price, 200)"}, "position 18 of select"),
        ("aggregates", {"select": "count(*)", "group_by": "range(city, 10)"}, "position 6 of group_by"),
        ("records", {"where": "intersects(city, geom'POINT(1 2)')"}, "position 11 of where"),
        ("records", {"where": "within(geo_point_2d, geom'POLYGON((1 2')"}, "position 21 of where"),
        ("records", {"where": "starts_at > now(fortnights=1)"}, "position 16 of where"),
    ]:
        body = await get_json(client, f"{V21}/datasets/demo-events/{path}", params=params, status=400)
        assert body["error_code"] == "ODSQLError" and where in body["message"], body


async def test_export_of_a_geometry_filter_and_a_range_grouping(client, demo_dataset):
    where = f"within(geo_point_2d, geom'{PARIS.wkt}')"
    response = await client.get(f"{V21}/datasets/demo-events/exports/json", params={"where": where, "select": "event_id",
                                                                                   "order_by": "event_id"})
    assert response.status == 200
    inside = [r["event_id"] for r in ROWS if r["geo_point_2d"]
              and shapely.Point(r["geo_point_2d"]["lon"], r["geo_point_2d"]["lat"]).within(PARIS)]
    assert [r["event_id"] for r in orjson.loads(await response.read())] == inside and inside
    response = await client.get(f"{V21}/datasets/demo-events/exports/json", params={
        "select": "count(*) as n", "group_by": "range(attendance, equi(10000, 0, 50000)) as band"})
    assert response.status == 200
    expected = Counter(r["attendance"] // 10000 * 10000 for r in ROWS if r["attendance"] < 50000)
    assert {r["band"]: r["n"] for r in orjson.loads(await response.read())} == dict(expected)
