"""The health screen's due queues (`stream.screen`): per asset, min-heaps of band edges, so that a cycle finds the
accounts whose band a move has left in O(log N) each, and O(assets) when every value stays inside every band.

Per asset there are QUEUES heaps: for each band kind (the price, the oracle uncertainty, the stable price) one of
-low (the highest lower edge on top) and one of high, then one per reach column of the reach caps. An entry is
(key, row, stamp); it is live while the row's stamp is unchanged (a new band, or the row found due, bumps the
stamp), and the stale ones are dropped when they surface or compacted. Compiled kernels over the screen's arrays;
tests/test_screen.py checks them against a scan of every band.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Due queues per asset: lower and upper bands of the price, of the oracle uncertainty and of the stable price, and
#: the reach caps of each of the 4 reach columns.
QUEUES = 10


@jit()
def _push(
    heap: int,
    key: float,
    row: int,
    stamp: int,
    keys: FloatArray,
    rows: IndexArray,
    stamps: IndexArray,
    size: IndexArray,
) -> None:  # pragma: no cover - compiled
    """Push (key, row, stamp) on min-heap `heap` (room is reserved by the caller)."""
    i = size[heap]
    size[heap] = i + 1
    while i > 0:
        parent = (i - 1) // 2
        if keys[heap, parent] <= key:
            break
        keys[heap, i], rows[heap, i], stamps[heap, i] = keys[heap, parent], rows[heap, parent], stamps[heap, parent]
        i = parent
    keys[heap, i], rows[heap, i], stamps[heap, i] = key, row, stamp


@jit()
def _sift_down(
    heap: int, i: int, keys: FloatArray, rows: IndexArray, stamps: IndexArray, size: IndexArray
) -> None:  # pragma: no cover - compiled
    """Restore the heap below position i."""
    n = size[heap]
    key, row, stamp = keys[heap, i], rows[heap, i], stamps[heap, i]
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and keys[heap, child + 1] < keys[heap, child]:
            child += 1
        if key <= keys[heap, child]:
            break
        keys[heap, i], rows[heap, i], stamps[heap, i] = keys[heap, child], rows[heap, child], stamps[heap, child]
        i = child
    keys[heap, i], rows[heap, i], stamps[heap, i] = key, row, stamp


@jit()
def _pop(
    heap: int, keys: FloatArray, rows: IndexArray, stamps: IndexArray, size: IndexArray
) -> None:  # pragma: no cover - compiled
    """Remove the top of min-heap `heap`."""
    last = size[heap] - 1
    size[heap] = last
    if last > 0:
        keys[heap, 0], rows[heap, 0], stamps[heap, 0] = keys[heap, last], rows[heap, last], stamps[heap, last]
        _sift_down(heap, 0, keys, rows, stamps, size)


@jit()
def enqueue(
    rows_in: IndexArray,
    asset: IndexArray,
    bounds: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray],
    column: IndexArray,
    cap: FloatArray,
    stamp: IndexArray,
    keys: FloatArray,
    rows: IndexArray,
    stamps: IndexArray,
    size: IndexArray,
) -> None:  # pragma: no cover - compiled
    """Give each of `rows_in` a new stamp (its old entries go stale) and queue the new bands of the screened ones
    (`bounds`: lower and upper of each kind; an infinite one is not queued: nothing can cross it)."""
    n_assets = size.shape[0] // QUEUES
    for row in rows_in:
        stamp[row] += 1
        a = asset[row]
        if a < 0:
            continue
        for kind in range(3):
            low, high = bounds[2 * kind][row], bounds[2 * kind + 1][row]
            if low > -math.inf:
                _push((2 * kind) * n_assets + a, -low, row, stamp[row], keys, rows, stamps, size)
            if high < math.inf:
                _push((2 * kind + 1) * n_assets + a, high, row, stamp[row], keys, rows, stamps, size)
        if cap[row] < math.inf:
            _push(6 * n_assets + 4 * a + column[row], cap[row], row, stamp[row], keys, rows, stamps, size)


@jit()
def compact(
    stamp: IndexArray, keys: FloatArray, rows: IndexArray, stamps: IndexArray, size: IndexArray
) -> None:  # pragma: no cover - compiled
    """Drop every stale entry and re-heapify."""
    for heap in range(size.shape[0]):
        n = 0
        for i in range(size[heap]):
            if stamps[heap, i] == stamp[rows[heap, i]]:
                keys[heap, n], rows[heap, n], stamps[heap, n] = keys[heap, i], rows[heap, i], stamps[heap, i]
                n += 1
        size[heap] = n
        for i in range(n // 2 - 1, -1, -1):
            _sift_down(heap, i, keys, rows, stamps, size)


@jit()
def _drain(
    heap: int,
    limit: float,
    strict: bool,
    stamp: IndexArray,
    out: IndexArray,
    n: int,
    keys: FloatArray,
    rows: IndexArray,
    stamps: IndexArray,
    size: IndexArray,
) -> int:  # pragma: no cover - compiled
    """Pop every entry of `heap` with key <= `limit` (< when `strict`); the live ones are due: written to `out`
    from `n` on, their stamp bumped so that their other entries go stale. Returns the new count."""
    while size[heap] > 0 and (keys[heap, 0] < limit or (not strict and keys[heap, 0] == limit)):
        row = rows[heap, 0]
        if stamps[heap, 0] == stamp[row]:
            out[n] = row
            n += 1
            stamp[row] += 1
        _pop(heap, keys, rows, stamps, size)
    return n


@jit()
def find_due(
    moved: BoolArray,
    values: tuple[FloatArray, FloatArray, FloatArray],
    reach: FloatArray,
    asset: IndexArray,
    stamp: IndexArray,
    out: IndexArray,
    keys: FloatArray,
    rows: IndexArray,
    stamps: IndexArray,
    size: IndexArray,
) -> int:  # pragma: no cover - compiled
    """Writes the due accounts of the `moved` assets to `out` (each once, unordered) and returns how many: those
    with a band that the asset's price, uncertainty or stable price (`values`, in the order of the band kinds) has
    left (value <= low, value >= high), or whose cap the reach has passed."""
    n_assets = moved.shape[0]
    n = 0
    for a in range(n_assets):
        if not moved[a]:
            continue
        for kind in range(3):
            value = values[kind][a]
            n = _drain((2 * kind) * n_assets + a, -value, False, stamp, out, n, keys, rows, stamps, size)
            n = _drain((2 * kind + 1) * n_assets + a, value, False, stamp, out, n, keys, rows, stamps, size)
        for c in range(4):
            n = _drain(6 * n_assets + 4 * a + c, reach[a, c], True, stamp, out, n, keys, rows, stamps, size)
    return n
