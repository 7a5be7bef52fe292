"""The oracle buffer: c x |net delta| x price uncertainty, per account and asset (docs/model.md)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def oracle_buffer_by_asset(delta: FloatArray, uncertainty: FloatArray, multiplier: float) -> FloatArray:
    """c * |delta| * U elementwise: net deltas (units; (H,) on the held rows, or any shape) and the uncertainty
    U of each one's asset (USD, the same shape)."""
    out: FloatArray = multiplier * np.abs(delta) * uncertainty
    return out


def oracle_buffer_numpy(greeks: FloatArray, uncertainty: FloatArray, multiplier: float) -> FloatArray:
    """The plain (N, A) twin from the dense Greeks (N, A, 3) and U (A,)."""
    return np.asarray(multiplier * np.abs(greeks[:, :, 0]) * uncertainty[np.newaxis, :], dtype=np.float64)
