"""The oracle buffer: c x |net delta| x price uncertainty, per account and asset (docs/model.md)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit, prange

FloatArray = NDArray[np.float64]


@jit(parallel=True)
def _buffer_kernel(greeks: FloatArray, uncertainty: FloatArray, multiplier: float, out: FloatArray) -> None:
    n_accounts, n_assets = out.shape
    for n in prange(n_accounts):
        for a in range(n_assets):
            out[n, a] = multiplier * abs(greeks[n, a, 0]) * uncertainty[a]


def oracle_buffer_by_asset(greeks: FloatArray, uncertainty: FloatArray, multiplier: float) -> FloatArray:
    """(N, A) c * |delta_a| * U_a from the Greeks (N, A, 3) (delta in units) and U (A,) in USD."""
    out = np.empty(greeks.shape[:2])
    _buffer_kernel(greeks, uncertainty, multiplier, out)
    return out


def oracle_buffer_numpy(greeks: FloatArray, uncertainty: FloatArray, multiplier: float) -> FloatArray:
    """The plain twin of `oracle_buffer_by_asset`."""
    return np.asarray(multiplier * np.abs(greeks[:, :, 0]) * uncertainty[np.newaxis, :], dtype=np.float64)
