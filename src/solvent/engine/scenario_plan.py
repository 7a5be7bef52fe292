"""Which scenario groups and which option rows the fused kernel (engine/kernel.py) reads for a set of risk arrays:
the groups every asset moves in and each asset's own (`group_plan`), own groups that mirror a joint group
(`own_mirrors`), and the dense table of the needed options' rows (`option_rows`). Set up once per risk arrays,
before the pass over the accounts."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit
from solvent.engine.riskarrays import RiskArrays

FloatArray = NDArray[np.float64]

#: Option rows (`option_rows`) at least this many columns wide (a 4 KB page) are read from pnl_rows in place: a dense
#: copy of them would share no more pages (the default Monte Carlo's 4,096 draws); shorter ones are copied.
PAGE_COLUMNS = 512


@jit()
def _moves_alone(
    asset_pnl: FloatArray, group_offsets: NDArray[np.int64], owner: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """(G,): for each group with an owner asset (owner[g] >= 0), whether every other asset's row is 0 in it."""
    n_groups = group_offsets.shape[0] - 1
    alone = np.zeros(n_groups, dtype=np.bool_)
    for g in range(n_groups):
        a = owner[g]
        if a < 0:
            continue
        alone[g] = True
        for b in range(asset_pnl.shape[0]):
            if b == a:
                continue
            for s in range(group_offsets[g], group_offsets[g + 1]):
                if asset_pnl[b, s] != 0.0:
                    alone[g] = False
                    break
            if not alone[g]:
                break
    return alone


def group_plan(arrays: RiskArrays) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(joint (J,), own (A,)): the scenario groups in which any asset may move, and each asset's own group or -1.

    A group is an asset's own when `arrays.group_asset` names that asset for it alone and no other asset's
    risk array moves in it (instrument rows are 0 outside their asset's group by construction,
    `riskarrays.refresh_risk_arrays`, and so is every other asset's row in a repeat, `RiskArrays.group_repeats`;
    other groups are scanned): an account that does not hold the asset has P&L 0 there. Every other
    group (ALL_ASSETS, the de-peg group -1, every group when group_asset is None) is joint: scanned for every
    account. Every group is either joint or one asset's own.
    """
    offsets = arrays.group_offsets
    n_groups = offsets.shape[0] - 1
    own = np.full(arrays.n_assets, -1, dtype=np.int64)
    owner = arrays.group_asset
    if owner is None or owner.shape != (n_groups,):
        return np.arange(n_groups, dtype=np.int64), own
    valid = (owner >= 0) & (owner < arrays.n_assets)
    count = np.bincount(owner[valid], minlength=arrays.n_assets)
    repeat = np.zeros(n_groups, dtype=np.bool_) if arrays.group_repeats is None else arrays.group_repeats >= 0
    scanned = np.where(valid & ~repeat, owner, -1).astype(np.int64)  # a repeat moves its owner alone: no scan
    alone = _moves_alone(arrays.asset_pnl, offsets, scanned) | (valid & repeat)
    for g in np.flatnonzero(valid & alone).tolist():
        if count[owner[g]] == 1:
            own[owner[g]] = g
    joint = np.setdiff1d(np.arange(n_groups, dtype=np.int64), own[own >= 0]).astype(np.int64)
    return joint, own


def own_mirrors(
    arrays: RiskArrays, joint: NDArray[np.int64], own: NDArray[np.int64]
) -> tuple[NDArray[np.int64], FloatArray]:
    """(source (A,), scale (A,)): for each asset whose own group mirrors a joint group (`RiskArrays.group_mirror`),
    that joint group's index k in `joint`, else -1; and the scale of its P&L to the joint group's (1 where none).

    The kernel builds a mirrored own group from the joint rows the account has just read (in cache) and scales its
    measure (every measure is positively homogeneous), and the compact rows need no own stretch for it."""
    source = np.full(arrays.n_assets, -1, dtype=np.int64)
    scale = np.ones(arrays.n_assets, dtype=np.float64)
    if arrays.group_mirror is None or arrays.group_scale is None:
        return source, scale
    where = {int(g): k for k, g in enumerate(joint.tolist())}
    for a in np.flatnonzero(own >= 0).tolist():
        g = int(own[a])
        k = where.get(int(arrays.group_mirror[g]), -1)
        if k >= 0:
            source[a] = k
            scale[a] = arrays.group_scale[g]
    return source, scale


def option_rows(
    arrays: RiskArrays,
    joint: NDArray[np.int64],
    own: NDArray[np.int64],
    source: NDArray[np.int64],
    needed: NDArray[np.bool_],
) -> tuple[FloatArray, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """(rows (R, W), row_of (I,), row_asset (R,), joint_at (J,), own_at (R,), own_asset_at (A,)): the `needed`
    options' risk arrays where they can be non-zero, for the kernel.

    Option i is row row_of[i] of rows (-1: not needed, or linear), on asset row_asset[r] (-1: a row no option
    needs). Joint group k is read from column joint_at[k], the option of row r's own group from column own_at[r],
    and an asset's own group of asset_pnl from column own_asset_at[a]; an own group that mirrors a joint group
    (`source`, `own_mirrors`) is read from that joint group's columns. When the plan's joint groups are the groups
    no asset owns, `RiskArrays.pnl_rows`' columns are the joint groups then each asset's own group (the Monte
    Carlo's stress groups, the per-asset grids): rows of at least PAGE_COLUMNS are read there in place, shorter
    ones copied, the needed rows only, into one dense table (so that an account's rows share pages and cache sets,
    not pnl_rows' wider ones interleaved with the linear instruments'); otherwise the copy is built group by group.
    The figures are the same to the bit either way.
    """
    offsets = arrays.group_offsets
    asset = arrays.instrument_asset
    mirrored = source >= 0
    own_asset_at = offsets[np.maximum(own, 0)]
    own_asset_at[mirrored] = offsets[joint[source[mirrored]]]
    sizes = np.diff(offsets)
    joint_at = np.concatenate([[0], np.cumsum(sizes[joint])]).astype(np.int64)
    width = int(joint_at[-1])
    own_column = np.full(arrays.n_assets, width, dtype=np.int64)
    own_column[mirrored] = joint_at[source[mirrored]]
    stored = (own >= 0) & ~mirrored  # own groups read from their own stretch
    longest = int(sizes[own[stored]].max()) if np.any(stored) else 0
    unowned = np.arange(sizes.shape[0]) if arrays.group_asset is None else np.flatnonzero(arrays.group_asset < 0)
    in_place = np.array_equal(joint, unowned)
    if in_place and width + longest >= PAGE_COLUMNS:
        picked = np.arange(asset.shape[0])
        rows = arrays.pnl_rows
    else:
        picked = np.flatnonzero(needed)
    row_of = np.full(asset.shape[0], -1, dtype=np.int64)
    row_of[picked] = np.arange(picked.shape[0])
    row_of[~needed] = -1
    row_asset = np.where(needed[picked], asset[picked], -1).astype(np.int64)
    if in_place and width + longest < PAGE_COLUMNS:
        rows = np.ascontiguousarray(arrays.pnl_rows[picked, : width + longest])
    elif not in_place:
        rows = np.zeros((picked.shape[0], width + longest))
        for k, g in enumerate(joint.tolist()):
            rows[:, joint_at[k] : joint_at[k + 1]] = arrays.group_rows(g, picked)
        for a in np.flatnonzero(stored).tolist():
            g = int(own[a])
            at = np.flatnonzero(asset[picked] == a)
            rows[at, width : width + sizes[g]] = arrays.group_rows(g, picked[at])
    own_at = own_column[asset[picked]].astype(np.int64)
    return rows, row_of, row_asset, joint_at[:-1], own_at, own_asset_at.astype(np.int64)
