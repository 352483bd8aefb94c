"""FlatGeobuf's spatial index: a packed Hilbert R-tree (flatgeobuf's packedrtree.cpp), with numpy.

Features are sorted by the Hilbert value of their bounding box's centre within the extent of
them all; the leaves are their boxes in that order, each with the feature's byte offset; each
node above holds the box around up to `node_size` nodes of the level below and the index of the
first of them. Levels are stored root first, so the leaves come last."""
from __future__ import annotations

import numpy as np

NODE_SIZE = 16
NODE = np.dtype([("min_x", "<f8"), ("min_y", "<f8"), ("max_x", "<f8"), ("max_y", "<f8"), ("offset", "<u8")])
HILBERT_MAX = (1 << 16) - 1


def extent(bounds: np.ndarray) -> np.ndarray:
    """[min_x, min_y, max_x, max_y] around the (n, 4) boxes."""
    if not len(bounds):
        return np.zeros(4)
    return np.concatenate([bounds[:, :2].min(axis=0), bounds[:, 2:].max(axis=0)])


def hilbert(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The position of each (x, y) (16-bit integers) on the Hilbert curve (as flatgeobuf's
    hilbert(x, y), after Rawrunprotected's fast Hilbert curve)."""
    x, y = x.astype(np.uint32), y.astype(np.uint32)
    a = x ^ y
    b = 0xFFFF ^ a
    c = 0xFFFF ^ (x | y)
    d = x & (y ^ 0xFFFF)
    A = a | (b >> 1)
    B = (a >> 1) ^ a
    C = ((c >> 1) ^ (b & (d >> 1))) ^ c
    D = ((a & (c >> 1)) ^ (d >> 1)) ^ d
    for shift in (2, 4):
        a, b, c, d = A, B, C, D
        A = (a & (a >> shift)) ^ (b & (b >> shift))
        B = (a & (b >> shift)) ^ (b & ((a ^ b) >> shift))
        C = C ^ ((a & (c >> shift)) ^ (b & (d >> shift)))
        D = D ^ ((b & (c >> shift)) ^ ((a ^ b) & (d >> shift)))
    a, b, c, d = A, B, C, D
    C = C ^ ((a & (c >> 8)) ^ (b & (d >> 8)))
    D = D ^ ((b & (c >> 8)) ^ ((a ^ b) & (d >> 8)))
    a = C ^ (C >> 1)
    b = D ^ (D >> 1)
    i0 = x ^ y
    i1 = b | (0xFFFF ^ (i0 | a))
    return (_spread(i1) << 1) | _spread(i0)


def _spread(v: np.ndarray) -> np.ndarray:
    """The 16 low bits of v moved to the even bits."""
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    return (v | (v << 1)) & 0x55555555


def hilbert_values(bounds: np.ndarray, around: np.ndarray) -> np.ndarray:
    """The Hilbert value of the centre of each of the (n, 4) boxes within the extent `around`."""
    min_x, min_y, max_x, max_y = around
    width, height = max_x - min_x, max_y - min_y
    cx = (bounds[:, 0] + bounds[:, 2]) / 2
    cy = (bounds[:, 1] + bounds[:, 3]) / 2
    x = np.floor(HILBERT_MAX * (cx - min_x) / width) if width else np.zeros(len(bounds))
    y = np.floor(HILBERT_MAX * (cy - min_y) / height) if height else np.zeros(len(bounds))
    return hilbert(x, y)


def level_sizes(items: int, node_size: int = NODE_SIZE) -> list[int]:
    """Nodes in each level, leaves first, root last (one level above even a single leaf)."""
    sizes = [items]
    n = items
    while True:
        n = -(-n // node_size)
        sizes.append(n)
        if n == 1:
            return sizes


def group_boxes(boxes: np.ndarray, node_size: int = NODE_SIZE) -> np.ndarray:
    """The box around each `node_size` boxes of the (n, 4) `boxes`, in order (the last group
    may be short): the level above them."""
    firsts = np.arange(0, len(boxes), node_size)
    return np.column_stack([np.minimum.reduceat(boxes[:, 0], firsts), np.minimum.reduceat(boxes[:, 1], firsts),
                            np.maximum.reduceat(boxes[:, 2], firsts), np.maximum.reduceat(boxes[:, 3], firsts)])


def upper_levels(groups: np.ndarray, items: int, node_size: int = NODE_SIZE) -> np.ndarray:
    """Every node above the leaves, root first, from `groups`: the boxes of the level just above
    the `items` leaves (group_boxes of the leaves in Hilbert order). Written before the leaves,
    they let the leaves be written a part at a time."""
    sizes = level_sizes(items, node_size)
    upper = np.empty(sum(sizes) - items, NODE)
    start = len(upper) - sizes[1]  # where the level being filled starts
    level = upper[start:]
    for k, name in enumerate(("min_x", "min_y", "max_x", "max_y")):
        level[name] = groups[:, k]
    level["offset"] = len(upper) + node_size * np.arange(sizes[1])  # its first leaf, by node number
    for below_size, size in zip(sizes[1:], sizes[2:]):
        below = upper[start: start + below_size]
        firsts = np.arange(0, below_size, node_size)
        level = upper[start - size: start]
        for name, reduce in (("min_x", np.minimum), ("min_y", np.minimum), ("max_x", np.maximum), ("max_y", np.maximum)):
            level[name] = reduce.reduceat(below[name], firsts)
        level["offset"] = start + firsts
        start -= size
    return upper


def leaves(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Leaf nodes: each feature's box and its byte offset among the features."""
    nodes = np.empty(len(boxes), NODE)
    for k, name in enumerate(("min_x", "min_y", "max_x", "max_y")):
        nodes[name] = boxes[:, k]
    nodes["offset"] = offsets
    return nodes


def tree(boxes: np.ndarray, offsets: np.ndarray, node_size: int = NODE_SIZE) -> np.ndarray:
    """All the nodes, root first, over the (n, 4) `boxes` in Hilbert order and their features'
    offsets, at once (the writer builds the same a part at a time)."""
    return np.concatenate([upper_levels(group_boxes(boxes, node_size), len(boxes), node_size), leaves(boxes, offsets)])
