"""formats/permute.py against the same permutation done in memory: records of random sizes,
some longer than a window (empty buckets), in windows far smaller than the file; fixed-size
records given as a broadcast size; nothing."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest

from formats.permute import permute


def records(rng, sizes):
    return [rng.bytes(int(s)) for s in sizes]


@pytest.mark.parametrize("window", [100, 1000, 1 << 20])
def test_records_come_out_in_their_new_order(tmp_path, window):
    rng = np.random.default_rng(window)
    sizes = rng.integers(1, 300, 2000).astype(np.uint32)
    sizes[::97] = 2500  # longer than most windows
    data = records(rng, sizes)
    rank = rng.permutation(len(sizes)).astype(np.int32)
    out = tmp_path / "out"
    with open(out, "w+b") as f:
        f.write(b"HEAD")
        placed = np.empty_like(sizes)
        placed[rank] = sizes
        written = permute(io.BytesIO(b"".join(data)), placed, rank, f.fileno(), 4, tmp_path, window)
    want = [None] * len(data)
    for i, r in enumerate(rank):
        want[r] = data[i]
    assert written == sum(map(len, data)) and out.read_bytes() == b"HEAD" + b"".join(want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_fixed_size_records_and_nothing(tmp_path):
    rng = np.random.default_rng(7)
    boxes = rng.normal(size=(5000, 4))
    rank = rng.permutation(5000)
    out = tmp_path / "out"
    with open(out, "w+b") as f:
        permute(io.BytesIO(boxes.tobytes()), np.broadcast_to(np.uint32(32), 5000), rank, f.fileno(), 0, tmp_path,
                window=4096)
        assert permute(io.BytesIO(b""), np.zeros(0, np.uint32), np.zeros(0, np.int32), f.fileno(), 0, tmp_path) == 0
    got = np.fromfile(out, "<f8").reshape(-1, 4)
    assert (got[rank] == boxes).all() and os.path.getsize(out) == boxes.nbytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the places' scratch file is gone
