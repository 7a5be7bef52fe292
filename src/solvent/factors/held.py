"""The (account, asset held) rows every per-asset figure is kept on: the Greeks and the per-asset IM terms.

A venue lists 100 to 400 assets and an account holds a few: a dense (N, A) array per figure costs accounts x
assets in memory and in every pass over it, though all but a few entries of each row are 0. `HeldAssets` is,
per account, the assets it holds in ascending order, in CSR form (offsets (N + 1,), asset (H,)) like the book's
positions; a per-asset figure is an (H,) (or (H, 3)) array on those rows, and every kernel is a pass over them.
Every figure of an asset an account does not hold is 0, so the rows lose nothing; `dense` scatters them into
the (N, A) view for callers that want one, and `every_asset` is the layout of a dense array (each account
holds every asset), through which the dense entry points of the factor kernels run the same compiled code.

Sums over an account's rows add in ascending asset order from 0.0, as a dense row sum adds its columns: the
columns skipped are 0, and x + 0.0 == x, so the figures are the dense ones to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit, prange

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class HeldAssets:
    """Per account, the assets it holds (ascending): rows offsets[n]..offsets[n + 1] of `asset`.

    offsets (N + 1,) int64, asset (H,) int64 in [0, n_assets)."""

    offsets: IndexArray
    asset: IndexArray
    n_assets: int

    @property
    def n_accounts(self) -> int:
        """N."""
        return int(self.offsets.shape[0] - 1)

    @property
    def n_rows(self) -> int:
        """H."""
        return int(self.asset.shape[0])

    def account(self) -> IndexArray:
        """(H,) the account of each row."""
        return np.repeat(np.arange(self.n_accounts, dtype=np.int64), np.diff(self.offsets))

    def rows_of(self, account: IndexArray, asset: IndexArray) -> IndexArray:
        """(K,) the row of each (account, asset) pair, each of which must be held."""
        keys = self.account() * self.n_assets + self.asset  # ascending: accounts in order, assets ascending
        rows: IndexArray = np.searchsorted(keys, account * self.n_assets + asset).astype(np.int64)
        return rows

    def gather(self, values: FloatArray, account: IndexArray, asset: IndexArray) -> FloatArray:
        """(K,) values (H,) at each (account, asset) pair, 0 where the account does not hold the asset."""
        keys = self.account() * self.n_assets + self.asset
        wanted = account * self.n_assets + asset
        rows = np.minimum(np.searchsorted(keys, wanted), max(self.n_rows - 1, 0))
        found = (keys[rows] == wanted) if self.n_rows else np.zeros(wanted.shape, dtype=np.bool_)
        out: FloatArray = np.where(found, values[rows] if self.n_rows else 0.0, 0.0)
        return out

    def dense(self, values: FloatArray) -> FloatArray:
        """(N, A, ...) the dense view of per-row `values` (H, ...): 0 where an account holds no asset."""
        out = np.zeros((self.n_accounts * self.n_assets, *values.shape[1:]), dtype=np.float64)
        out[self.account() * self.n_assets + self.asset] = values
        return out.reshape(self.n_accounts, self.n_assets, *values.shape[1:])

    def row_sums(self, values: FloatArray) -> FloatArray:
        """(N,) each account's sum of its rows of `values` (H,), in ascending asset order from 0.0 (the module
        docstring: the dense row sums, to the bit)."""
        out = np.empty(self.n_accounts)
        _row_sums(self.offsets, values, out)
        return out


def every_asset(n_accounts: int, n_assets: int) -> HeldAssets:
    """The layout of a dense (N, A) array: every account holds every asset."""
    offsets = np.arange(n_accounts + 1, dtype=np.int64) * n_assets
    return HeldAssets(offsets, np.tile(np.arange(n_assets, dtype=np.int64), n_accounts), n_assets)


def held_assets(
    pos_offsets: IndexArray,
    pos_asset: NDArray[np.integer],
    n_assets: int,
    extra_offsets: IndexArray | None = None,
    extra_asset: NDArray[np.integer] | None = None,
) -> HeldAssets:
    """The assets each account holds: those of its positions (pos_asset (P,): each position's asset, CSR by
    pos_offsets (N + 1,)) and, optionally, further (account, asset) pairs in CSR form (extra_offsets (N + 1,),
    extra_asset (E,); collateral balances), each account's assets once and ascending."""
    n = pos_offsets.shape[0] - 1
    if extra_offsets is None or extra_asset is None:
        extra_offsets = np.zeros(n + 1, dtype=np.int64)
        extra_asset = np.zeros(0, dtype=np.int64)
    pos = np.ascontiguousarray(pos_asset, dtype=np.int64)
    extra = np.ascontiguousarray(extra_asset, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    _held_pass(pos_offsets, pos, extra_offsets, extra, n_assets, counts, np.zeros(0, dtype=np.int64), False)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    asset = np.empty(int(offsets[-1]), dtype=np.int64)
    _held_pass(pos_offsets, pos, extra_offsets, extra, n_assets, offsets, asset, True)
    return HeldAssets(offsets, asset, n_assets)


@jit(parallel=True)
def _held_pass(
    pos_offsets: IndexArray,
    pos_asset: IndexArray,
    extra_offsets: IndexArray,
    extra_asset: IndexArray,
    n_assets: int,
    counts_or_offsets: IndexArray,
    out_asset: IndexArray,
    fill: bool,
) -> None:  # pragma: no cover - compiled
    """Count (fill False: counts_or_offsets (N,) the distinct assets per account) or write (fill True:
    counts_or_offsets (N + 1,) the offsets, out_asset the ascending assets) each account's held assets."""
    n_accounts = pos_offsets.shape[0] - 1
    n_chunks = min(n_accounts, 256)
    for c in prange(n_chunks):
        seen = np.zeros(n_assets, dtype=np.bool_)
        found = np.empty(n_assets, dtype=np.int64)
        lo = c * n_accounts // n_chunks
        hi = (c + 1) * n_accounts // n_chunks
        for n in range(lo, hi):
            k = 0
            for p in range(pos_offsets[n], pos_offsets[n + 1]):
                a = pos_asset[p]
                if not seen[a]:
                    seen[a] = True
                    found[k] = a
                    k += 1
            for p in range(extra_offsets[n], extra_offsets[n + 1]):
                a = extra_asset[p]
                if not seen[a]:
                    seen[a] = True
                    found[k] = a
                    k += 1
            for j in range(k):
                seen[found[j]] = False
            if not fill:
                counts_or_offsets[n] = k
                continue
            for j in range(1, k):  # insertion sort: an account holds a few assets
                a = found[j]
                i = j
                while i > 0 and found[i - 1] > a:
                    found[i] = found[i - 1]
                    i -= 1
                found[i] = a
            start = counts_or_offsets[n]
            for j in range(k):
                out_asset[start + j] = found[j]


@jit(parallel=True)
def _row_sums(offsets: IndexArray, values: FloatArray, out: FloatArray) -> None:  # pragma: no cover - compiled
    for n in prange(offsets.shape[0] - 1):
        total = 0.0
        for h in range(offsets[n], offsets[n + 1]):
            total += values[h]
        out[n] = total
