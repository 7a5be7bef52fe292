"""`solvent._numba.prefetch`: LLVM's prefetch hint in compiled kernels, which must change no value."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from solvent._numba import prefetch


@numba.njit
def _row_sums_prefetching_ahead(table: np.ndarray, ahead: int) -> np.ndarray:
    """Each row's sum, the row `ahead` rows on prefetched line by line first (past the end too: a hint never faults)."""
    sums = np.zeros(table.shape[0])
    for r in range(table.shape[0]):
        for column in range(0, table.shape[1], 8):
            prefetch(table, r + ahead, column)
        for column in range(table.shape[1]):
            sums[r] += table[r, column]
    return sums


@numba.njit
def _row_sums(table: np.ndarray) -> np.ndarray:
    """The same sums without the prefetches."""
    sums = np.zeros(table.shape[0])
    for r in range(table.shape[0]):
        for column in range(table.shape[1]):
            sums[r] += table[r, column]
    return sums


def test_prefetch_compiles_to_llvm_prefetch_and_changes_nothing() -> None:
    table = np.random.default_rng(3).normal(size=(64, 40))
    before = table.copy()
    for ahead in (0, 1, 5, 1000, -1000):
        np.testing.assert_array_equal(_row_sums_prefetching_ahead(table, ahead), _row_sums(table))
    np.testing.assert_array_equal(table, before)
    ir = next(iter(_row_sums_prefetching_ahead.inspect_llvm().values()))
    assert "@llvm.prefetch" in ir


def test_prefetch_takes_a_two_dimensional_array_and_integer_indices() -> None:
    @numba.njit
    def on_a_vector(vector: np.ndarray) -> None:
        prefetch(vector, 0, 0)

    with pytest.raises(numba.core.errors.TypingError):
        on_a_vector(np.zeros(8))
