"""The benchmark's datasets, generated deterministically (same rows, same bytes) and cached
under bench/out/ in exportd's storage layout: written as a Parquet file, then imported with
domain.datasets.import_file exactly as a portal's dataset would be.

- points: N rows, the twelve columns of the demo events (text with accents, non-Latin
  scripts, quotes and line breaks; int; double; boolean; date; two tz-aware datetimes; a
  low-cardinality category; geo_point_2d, 2% of them null);
- polygons: N/10 rows of zones with a polygon geo_shape (WKB, 16 vertices, 1% null).

Each is generated in chunks with numpy and pyarrow.compute (no per-row Python), so a million
rows take seconds. For the GDAL baselines a copy of each is kept as FlatGeobuf (no index),
which ogr2ogr reads natively: Debian's GDAL has no Parquet driver.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from domain import demo
from domain.datasets import Dataset, import_file
from domain.fields import DATETIME, GEO_POINT, Field, with_fields
from domain.storage import LocalStorage

OUT = Path(__file__).resolve().parent / "out"
GENERATOR = "v1"  # bump when the generated rows change, so caches are rebuilt
CHUNK = 100_000
SEED = 2024

# the demo dataset's vocabulary and fields, at benchmark scale
CITIES, CATEGORIES, TITLES, POINT_FIELDS = demo.CITIES, demo.CATEGORIES, demo.TITLE_PARTS, demo.FIELDS
ZONE_KINDS = ["parc", "zone piétonne", "quartier", "réserve naturelle", "zone 30"]

POLYGON_FIELDS = [
    Field("zone_id", "int", "Zone ID"),
    Field("name", "text", "Name"),
    Field("kind", "text", "Kind"),
    Field("area_km2", "double", "Area (km²)"),
    Field("protected", "boolean", "Protected"),
    Field("created", "date", "Created"),
    Field("updated_at", "datetime", "Updated at"),
    Field("geo_shape", "geo_shape", "Shape"),
]


@dataclass
class Bench:
    """One generated dataset, ready to scan: where its Parquet is and what it holds."""

    name: str  # points or polygons
    rows: int
    storage: LocalStorage
    dataset: Dataset

    @property
    def path(self) -> Path:
        return self.storage.path(self.dataset.data_key)

    @property
    def gdal_source(self) -> Path:
        """The same records as FlatGeobuf, for ogr2ogr."""
        return OUT / f"{self.name}-{self.rows}-{GENERATOR}.fgb"


def _pick(rng: np.random.Generator, words: list[str], n: int) -> pa.Array:
    return pa.array(words, pa.string()).take(pa.array(rng.integers(0, len(words), n)))


def _seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Quarter hours over 2024–2025, in seconds since the epoch."""
    return 1_704_067_200 + rng.integers(0, 730 * 96, n) * 900


def _utc(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds * 1_000_000, pa.int64()).cast(DATETIME)


def _days(seconds: np.ndarray) -> pa.Array:
    return pa.array((seconds // 86400).astype(np.int32), pa.int32()).cast(pa.date32())


def _city_coords(rng: np.random.Generator, n: int, spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    city = rng.integers(0, len(CITIES), n)
    lon = np.round(np.array([c[1] for c in CITIES])[city] + rng.normal(0, spread, n), 6)
    lat = np.round(np.array([c[2] for c in CITIES])[city] + rng.normal(0, spread, n), 6)
    return city, lon, lat


def point_chunk(rng: np.random.Generator, start: int, n: int) -> pa.RecordBatch:
    ids = np.arange(start + 1, start + n + 1)
    id_text = pa.array(ids).cast(pa.string())
    city, lon, lat = _city_coords(rng, n, 0.02)
    city_names = pa.array([c[0] for c in CITIES], pa.string()).take(pa.array(city))
    category = _pick(rng, CATEGORIES, n)
    description = pc.binary_join_element_wise(
        "Édition ", pa.array(ids % 9 + 1).cast(pa.string()), ", à ", city_names, "; entrée « ", category, " »", "")
    description = pc.if_else(pa.array(ids % 17 == 0), pa.scalar(None, pa.string()), description)
    free = rng.random(n) < 0.3
    starts = _seconds(rng, n)
    ends = starts + rng.integers(1, 16, n) * 1800
    points = pa.StructArray.from_arrays([pa.array(lon), pa.array(lat)], fields=list(GEO_POINT),
                                        mask=pa.array(ids % 50 == 0))
    return pa.RecordBatch.from_arrays([
        pa.array(ids, pa.int64()),
        pc.binary_join_element_wise(_pick(rng, TITLES, n), id_text, " #"),
        description,
        category,
        city_names,
        pa.array(rng.integers(10, 50_000, n), pa.int64()),
        pa.array(np.where(free, 0.0, np.round(rng.uniform(2, 120, n), 2)), pa.float64()),
        pa.array(free, pa.bool_()),
        _days(starts),
        _utc(starts),
        _utc(ends),
        points,
    ], names=[f.name for f in POINT_FIELDS])


def polygon_chunk(rng: np.random.Generator, start: int, n: int, vertices: int = 16) -> pa.RecordBatch:
    ids = np.arange(start + 1, start + n + 1)
    city, lon, lat = _city_coords(rng, n, 0.05)
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    radius = rng.uniform(0.0005, 0.01, (n, 1)) * rng.uniform(0.7, 1.3, (n, vertices))
    ring = np.stack([lon[:, None] + radius * np.cos(angles), lat[:, None] + radius * np.sin(angles)], axis=2)
    ring = np.concatenate([ring, ring[:, :1]], axis=1).round(6)  # closed
    polygons = shapely.polygons(ring)
    polygons[ids % 100 == 0] = None
    city_names = pa.array([c[0] for c in CITIES], pa.string()).take(pa.array(city))
    kind = _pick(rng, ZONE_KINDS, n)
    updated = _seconds(rng, n)
    return pa.RecordBatch.from_arrays([
        pa.array(ids, pa.int64()),
        pc.binary_join_element_wise(kind, city_names, pa.array(ids).cast(pa.string()), " "),
        kind,
        pa.array(np.round(shapely.area(polygons) * 8000, 4), pa.float64(), from_pandas=True),
        pa.array(rng.random(n) < 0.2, pa.bool_()),
        _days(updated - rng.integers(0, 3650, n) * 86400),
        _utc(updated),
        pa.array(shapely.to_wkb(polygons), pa.binary()),
    ], names=[f.name for f in POLYGON_FIELDS])


KINDS = {"points": (POINT_FIELDS, point_chunk), "polygons": (POLYGON_FIELDS, polygon_chunk)}


def _write_source(path: Path, name: str, rows: int) -> None:
    fields, chunk = KINDS[name]
    rng = np.random.default_rng(SEED)
    writer = None
    for start in range(0, rows, CHUNK):
        batch = chunk(rng, start, min(CHUNK, rows - start))
        if writer is None:
            writer = pq.ParquetWriter(path, with_fields(batch.schema, fields), compression="zstd")
        writer.write_batch(batch)
    assert writer is not None
    writer.close()


def _write_gdal_source(bench: Bench) -> None:
    """The dataset as FlatGeobuf with a WKB geometry, via pyogrio's Arrow writer."""
    import pyogrio

    from formats.geo import geometries, geometry_index, wkb

    fields = bench.dataset.fields
    geo = geometry_index(fields)
    partial = bench.gdal_source.with_suffix(".part.fgb")
    reader = pq.ParquetFile(bench.path)
    names = [f.name for i, f in enumerate(fields) if i != geo]
    batches = (
        pa.RecordBatch.from_arrays(
            [b.column(i) for i, f in enumerate(fields) if i != geo] + [wkb(geometries(b.column(geo), fields[geo].type))],
            names=names + ["geometry"])
        for b in reader.iter_batches(batch_size=CHUNK)
    )
    first = next(batches)
    table = pa.RecordBatchReader.from_batches(first.schema, [first, *batches])
    pyogrio.write_arrow(table, partial, driver="FlatGeobuf", geometry_name="geometry",
                        geometry_type="Point" if bench.name == "points" else "Polygon",
                        crs="EPSG:4326", layer=bench.name, layer_options={"SPATIAL_INDEX": "NO"})
    partial.replace(bench.gdal_source)


def load(name: str, rows: int, gdal: bool = False) -> Bench:
    """The dataset `name` (points or polygons) of `rows` rows, generated on first use."""
    data = OUT / "data"
    storage = LocalStorage(data)
    meta = OUT / f"{name}-{rows}-{GENERATOR}.json"
    bench = None
    if meta.exists():
        dataset = Dataset.from_json(meta.read_bytes())
        if storage.exists(dataset.data_key):
            bench = Bench(name, rows, storage, dataset)
    if bench is None:
        OUT.mkdir(parents=True, exist_ok=True)
        source = OUT / f"{name}-{rows}-{GENERATOR}.source.parquet"
        _write_source(source, name, rows)
        dataset_id = f"bench-{name}-{rows}"
        shutil.rmtree(data / "datasets" / dataset_id, ignore_errors=True)
        dataset = import_file(source, dataset_id, storage, title=f"bench {name} ({rows} rows)",
                              fields=KINDS[name][0])
        source.unlink()
        meta.write_bytes(dataset.to_json())
        bench = Bench(name, rows, storage, dataset)
    if gdal and not bench.gdal_source.exists():
        _write_gdal_source(bench)
    return bench
