"""The adopt path of Storage.writing: a writer's finished file (the FlatGeobuf writer's) renamed onto
the fresh partial file rather than copied into it, published as the copy would have been, within
the size limit, removed on failure; and every case where it falls back to the copy (`out`
already written to, wrapped by gzip, not a partial, on another file system). A killed writer's
scratch directory beside its partial goes with the partial sweep."""
from __future__ import annotations

import gzip
import io
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from domain.fields import fields_of
from domain.query import RecordQuery, Scan
from domain.storage import ExportTooLarge, LocalStorage, Storage, open_storage
from domain.storage.base import adopt
from formats import REGISTRY, geo
from tests.formats.samples import awkward_table, write
from worker.writing import Progress, write_export

KEY = "exports/e/1/out.bin"
DATA = b"\x00finished file\xff" * 1000


@pytest.fixture
def storage(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


def finished(out: BinaryIO, data: bytes = DATA) -> Path:
    """A finished file in a scratch directory beside `out`, as the FlatGeobuf writer leaves it."""
    path = geo.scratch_dir(out) / "data.bin"
    path.write_bytes(data)
    return path


def leftovers(storage: Storage) -> list[str]:
    return sorted(p.name for p in storage.partials.iterdir())


def test_a_finished_file_is_renamed_onto_a_fresh_partial(storage):
    with storage.writing(KEY, tag="e~1") as out:
        path = finished(out)
        assert path.parent.parent == storage.partials  # the same file system: a rename works
        assert adopt(out, path) and not path.exists()
        with pytest.raises(ValueError):  # a stray write fails rather than goes to a file nobody publishes
            out.write(b"more")
        path.parent.rmdir()
    assert storage.local_path(KEY).read_bytes() == DATA and leftovers(storage) == []


def test_a_partial_written_to_wrapped_or_not_the_storages_is_copied_into(storage, tmp_path):
    with storage.writing(KEY) as out:
        out.write(b"head ")
        path = finished(out)
        assert not adopt(out, path) and path.read_bytes() == DATA
        shutil.rmtree(path.parent)
    assert storage.local_path(KEY).read_bytes() == b"head "
    with storage.writing(KEY) as out:
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as zipped:
            path = finished(zipped)  # beside the partial all the same
            assert path.parent.parent == storage.partials
            assert not adopt(zipped, path)
            zipped.write(path.read_bytes())
        shutil.rmtree(path.parent)
    assert gzip.decompress(storage.local_path(KEY).read_bytes()) == DATA
    with open(tmp_path / "mine.bin", "wb") as own:
        path = finished(own)
        assert path.parent.parent == tmp_path
        assert not adopt(own, path) and not adopt(io.BytesIO(), path) and path.read_bytes() == DATA
    assert (tmp_path / "mine.bin").read_bytes() == b""


def test_a_file_on_another_file_system_is_copied(storage):
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == storage.partials.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) here")
    with tempfile.TemporaryDirectory(dir=other) as scratch, storage.writing(KEY) as out:
        path = Path(scratch) / "data.bin"
        path.write_bytes(DATA)
        assert not adopt(out, path) and path.read_bytes() == DATA
        out.write(DATA)
    assert storage.local_path(KEY).read_bytes() == DATA


def test_the_size_limit_holds_for_an_adopted_file(storage):
    with pytest.raises(ExportTooLarge, match="100-byte limit"), storage.writing(KEY, "e~1", max_bytes=100) as out:
        path = finished(out, b"x" * 101)
        try:
            adopt(out, path)
        finally:
            shutil.rmtree(path.parent)
    assert not storage.exists(KEY) and leftovers(storage) == []
    with storage.writing(KEY, "e~1", max_bytes=100) as out:
        path = finished(out, b"x" * 100)
        assert adopt(out, path) and out.tell() == 100
        with pytest.raises(ExportTooLarge):  # full: as if the bytes had been written through it
            out.write(b"y")
        path.parent.rmdir()
    assert storage.size(KEY) == 100


def test_a_failure_after_adopting_publishes_nothing(storage):
    with pytest.raises(RuntimeError), storage.writing(KEY, "e~1") as out:
        path = finished(out)
        assert adopt(out, path)
        path.parent.rmdir()
        raise RuntimeError("cancelled after the writer closed")
    assert not storage.exists(KEY) and leftovers(storage) == []


def test_the_partial_sweep_removes_a_killed_writers_scratch_directory(storage):
    with storage.writing(KEY, "e~1") as out:
        path = finished(out)
    # the writer died without cleaning up: its directory stays, under its partial's tag
    assert path.exists() and storage.partial_tags() == {"e~1"}
    assert storage.sweep_partials(0, dead_tags={"e~2", ""}) == 0 and path.exists()
    assert storage.sweep_partials(0, dead_tags={"e~1"}) == 1 and leftovers(storage) == []


def test_the_partial_sweep_leaves_a_partial_begun_after_its_tags_were_judged(storage):
    """The recover cron lists the tags, asks Redis which attempts are dead, then sweeps: a
    writer that began in between (an export that became processing meanwhile) keeps its file."""
    with storage.writing("exports/old", "e~1"):
        judged = storage.partial_tags()  # e~1 found dead, say
    with storage.writing(KEY, "e~2") as out:
        out.write(b"begun after the listing")
        assert storage.sweep_partials(0, dead_tags=judged) == 0
    assert storage.exists(KEY)


@pytest.fixture
def awkward_scan(tmp_path) -> Callable[[], Scan]:
    """A new scan (one is read once) of the awkward table, stored in several row groups."""
    table = awkward_table()
    pq.write_table(table, tmp_path / "data.parquet", row_group_size=2)
    source = pads.dataset(str(tmp_path / "data.parquet"), format="parquet")
    return lambda: RecordQuery().scan(source, fields_of(table.schema), batch_rows=2)


@pytest.fixture
def adopted(monkeypatch) -> list[bool]:
    """What each of the writers' calls to adopt (formats.geo) answered."""
    answers: list[bool] = []

    def watched(out, path):
        answers.append(adopt(out, path))
        return answers[-1]
    monkeypatch.setattr(geo, "adopt", watched)
    return answers


@pytest.mark.backends("local", "s3")
def test_a_flatgeobuf_export_publishes_its_file_renamed(make_settings, awkward_scan, adopted):
    storage = open_storage(make_settings())
    try:
        fmt = REGISTRY.get("fgb")
        for attempt, (options, renamed) in enumerate((({}, True), ({"compressed": True}, False))):
            key, scan = f"exports/e/{attempt}/out.fgb", awkward_scan()
            parsed = fmt.parse_options(options, scan.fields)
            written = write_export(storage, key, f"e~{attempt}", scan, fmt, parsed, Progress(), max_bytes=1 << 20)
            data = storage.local_path(key).read_bytes()
            assert adopted.pop() is renamed and written.size == len(data) and written.skipped == 1
            assert (gzip.decompress(data) if options else data) == write("fgb", awkward_table())[0]  # the copy's bytes
            assert leftovers(storage) == []
    finally:
        storage.close()


def test_a_flatgeobuf_export_past_the_size_limit_fails_and_leaves_nothing(storage, awkward_scan, adopted):
    fmt, scan = REGISTRY.get("fgb"), awkward_scan()
    with pytest.raises(ExportTooLarge, match="1,000-byte limit"):
        write_export(storage, KEY, "e~1", scan, fmt, fmt.parse_options({}, scan.fields), Progress(), max_bytes=1000)
    assert adopted == []  # adopt refused it (a copy would have been refused after adopt answered False)
    assert not storage.exists(KEY) and leftovers(storage) == []
