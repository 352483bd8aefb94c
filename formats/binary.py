"""Arrow binary arrays made from numpy buffers without a copy, and joined row by row: the way
the binary formats (FlatGeobuf, Shapefile) build a batch's records as bytes at once."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def fixed(records: np.ndarray, valid: np.ndarray | None = None) -> pa.BinaryArray:
    """Each record of a structured array as one binary value of its bytes; null where `valid`
    (booleans, if given) is False."""
    size = records.dtype.itemsize
    offsets = np.arange(0, size * (len(records) + 1), size, dtype=np.int32)
    nulls = 0 if valid is None else len(valid) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.BinaryArray.from_buffers(pa.binary(), len(records), [bitmap, pa.py_buffer(offsets),
                                                                    pa.py_buffer(np.ascontiguousarray(records))],
                                       null_count=nulls)


def running_totals(counts: np.ndarray) -> np.ndarray:
    """0, then the running totals of `counts` (n + 1 int64): where each of n runs of those
    sizes starts, one after the other, and where the last ends."""
    totals = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=totals[1:])
    return totals


def sliced(data: np.ndarray, counts: np.ndarray, unit: int) -> pa.BinaryArray:
    """Binary values cut one after the other from `data`'s bytes, value i `counts[i] * unit` long."""
    offsets = running_totals(counts) * unit
    return pa.BinaryArray.from_buffers(pa.binary(), len(counts), [None, pa.py_buffer(offsets.astype(np.int32)),
                                                                   pa.py_buffer(np.ascontiguousarray(data))])


def join(*parts: pa.Array) -> pa.BinaryArray:
    return pc.binary_join_element_wise(*parts, b"")
