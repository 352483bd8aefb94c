"""Small dataset versions are scanned from memory (domain/version_cache.py): decoded once,
the least recently scanned let go past the bound, a large one still read from its file, and
what a scan gives is the same either way."""
from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from domain import demo
from domain.fields import fields_of
from domain.query import RecordQuery
from domain.version_cache import HeldVersions, decoded_bytes


def stored(tmp_path, name: str, rows: int) -> str:
    path = tmp_path / f"{name}.parquet"
    pq.write_table(demo.table(rows=rows), path, row_group_size=max(1, rows // 3))
    return str(path)


def test_a_small_version_is_decoded_once_and_a_large_one_is_not_held(tmp_path):
    small, large = stored(tmp_path, "small", 200), stored(tmp_path, "large", 5000)
    held = HeldVersions(small_bytes=decoded_bytes(small), held_bytes=1 << 30)
    first = held.get(small)
    assert isinstance(first, pads.InMemoryDataset) and held.get(small) is first
    assert first.to_table().equals(pq.read_table(small))
    assert held.get(large) is None  # its columns take more than small_bytes


def test_the_least_recently_scanned_go_past_the_bound(tmp_path):
    paths = [stored(tmp_path, f"v{i}", 300) for i in range(3)]
    one = pq.read_table(paths[0]).nbytes
    held = HeldVersions(held_bytes=2 * one)  # room for two
    first, second = held.get(paths[0]), held.get(paths[1])
    assert held.get(paths[0]) is first  # now the most recently scanned
    held.get(paths[2])  # the third lets go of the least recent: the second
    assert held.get(paths[0]) is first and held.get(paths[1]) is not second


def test_a_query_gives_the_same_records_from_memory_as_from_the_file(tmp_path):
    path = stored(tmp_path, "small", 900)
    fields = fields_of(pq.read_schema(path))
    query = RecordQuery(where=("event_id > 100",), select="event_id, title", order_by="event_id desc", limit=50)
    results = []
    for source in (pads.dataset(path, format="parquet"), HeldVersions().get(path)):
        scan = query.scan(source, fields, batch_rows=7)
        results.append((scan.count(), [row for batch in scan.batches() for row in batch.to_pylist()]))
    assert results[0] == results[1] and results[0][0] == 50 and len(results[0][1]) == 50
    assert pc.count(pq.read_table(path).filter(pc.field("event_id") > 100)["event_id"]).as_py() > 50
