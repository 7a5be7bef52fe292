"""Per-parent totals of isolated sub-accounts (docs/model.md, "Cross, isolated and multi-venue accounts").

An isolated sub-account is margined on its own collateral and positions, as its own record; nothing
is pooled with its parent. The rollup only adds up, per parent, what its isolated sub-accounts require
and hold, for reports: it never offsets one sub-account's surplus against another's shortfall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from solvent.engine.results import MarginResult

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ParentRollup:
    """G parents that have isolated sub-accounts, in order of first appearance in the book.

    n_isolated: (G,) how many sub-accounts name the parent; im, mm, equity: (G,) their sums over those
    sub-accounts (the parent's own record not included); short: (G,) how many of them are liquidatable.
    """

    parent_ids: NDArray[np.object_]
    n_isolated: NDArray[np.int64]
    im: FloatArray
    mm: FloatArray
    equity: FloatArray
    short: NDArray[np.int64]

    @property
    def n_parents(self) -> int:
        """G."""
        return int(self.parent_ids.shape[0])

    def to_arrow(self) -> pa.Table:
        """One row per parent."""
        return pa.table(
            {
                "parent": pa.array(self.parent_ids, type=pa.string()),
                "n_isolated": self.n_isolated,
                "im": self.im,
                "mm": self.mm,
                "equity": self.equity,
                "liquidatable": self.short,
            }
        )


def parent_rollup(result: MarginResult) -> ParentRollup:
    """Per parent, the totals of its isolated sub-accounts (empty when the result carries no parents)."""
    parent = result.parent
    if parent is None or result.n_accounts == 0:
        has_parent = np.zeros(result.n_accounts, dtype=np.bool_)
    else:
        has_parent = np.array([p is not None for p in parent], dtype=np.bool_)
    if not has_parent.any():
        empty = np.zeros(0)
        return ParentRollup(
            np.array([], dtype=object), np.zeros(0, np.int64), empty, empty, empty, np.zeros(0, np.int64)
        )
    assert parent is not None
    names = parent[has_parent].astype(str)
    unique, first, group = np.unique(names, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # parents in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    group = rank[group]
    count = unique.size

    def total(values: NDArray[np.float64] | NDArray[np.bool_]) -> FloatArray:
        return np.bincount(group, weights=values[has_parent].astype(np.float64), minlength=count).astype(np.float64)

    return ParentRollup(
        parent_ids=unique[order].astype(object),
        n_isolated=np.bincount(group, minlength=count).astype(np.int64),
        im=total(result.im),
        mm=total(result.mm),
        equity=total(result.equity),
        short=total(result.liquidatable).astype(np.int64),
    )
