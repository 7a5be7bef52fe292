"""Shared pieces of the baseline rules: input checks, a range check for parameters, per-account sums.

Kernels take array-likes, convert them once to float64 arrays (`as_float`, from solvent/arrays.py, which the
factors' venue curves use too) and check them there: a non-finite value, or a negative one where only magnitudes
make sense, raises ValueError naming the argument and the first offending value. They never write to their inputs.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from solvent.arrays import FloatArray as FloatArray
from solvent.arrays import as_float as as_float
from solvent.arrays import out as out


def check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    """ValueError "name: ..." unless low (<, or <= when not low_open) value <= high, and value is finite.

    Used by the parameter structs' `__post_init__`, so a bad value fails on direct construction too
    (msgspec checks `Meta` constraints only when decoding); the "field: message" form is what
    `solvent.formats.errors` turns into an InputError naming the field.
    """
    inside = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not inside:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name}: must be in {bracket}{low}, {high}], got {value!r}")


def sum_by_account(values: ArrayLike, pos_offsets: ArrayLike) -> FloatArray:
    """(N,) per-account sums of per-position values in CSR order (a `Book`'s `pos_offsets`, length N + 1).

    Every baseline rule margins positions one at a time and adds them up; this is that sum, vectorised
    (np.bincount over the account index of each position; an account without positions gets 0).
    """
    offsets = np.asarray(pos_offsets, dtype=np.int64)
    per_position = as_float("values", values)
    if offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError("pos_offsets: must start at 0 and be non-decreasing")
    if per_position.shape != (int(offsets[-1]),):
        raise ValueError(f"values: expected shape ({int(offsets[-1])},) from pos_offsets, got {per_position.shape}")
    n_accounts = offsets.size - 1
    account = np.repeat(np.arange(n_accounts, dtype=np.int64), np.diff(offsets))
    return np.bincount(account, weights=per_position, minlength=n_accounts).astype(np.float64, copy=False)
