"""Account scenario P&L reduced to a margin, fused: the accounts x scenarios matrix is never built.

For each account the kernel nets its linear positions into one delta per asset, adds each option's
risk array, and reduces the resulting scenario P&L with the risk measure within each scenario group;
group results (floored at 0) are summed. It also accumulates the account's Greeks per asset. A linear
account whose net delta is on one asset only (the common perpetual trader) skips the scenarios: every
measure below is positively homogeneous, so its margin is |delta| times the measure of one unit of its side
(computed once per call for every asset and side), the same figure up to rounding.

Scenario sets with one group per asset (the SPAN grid, Deribit's, the Monte Carlo's correlation stress groups)
are mostly zeros for any one account: an instrument's row and its asset's row are 0 outside its own asset's
group and the joint groups (`group_plan`). The kernel builds and reduces an account's P&L over the joint groups
and, in an asset's own group, only where the account holds several positions on that asset (options, or options
and a net delta); a net delta alone there is |delta| x the asset's unit measure and one option alone |quantity| x
the option's (the same homogeneity, per call), and the groups of the assets it does not hold count 0 (their P&L
is 0, and groups are floored at 0). An account's options' rows are read once, from a dense copy of the rows the
pass needs (`option_rows`), into the joint groups and, while in cache, its own groups. An own group that mirrors
a joint group (the Monte Carlo's stress groups, `own_mirrors`) holds its asset's vector there (its rows two at a
time, then its net delta), which is added into the joint group once: the joint P&L is then the sum of the assets'
vectors (the order of that sum, not the twin's, sets the last bits), and an account on one asset has its vector as
its joint P&L exactly, so its joint measure is its own group's, reduced once. The k largest losses of a group come
from lane maxima (engine/measures.py `top_losses`), exactly. The numpy twin reduces every group of the dense P&L.

`margins_numpy` is the plain, obviously correct twin (dense P&L per chunk of accounts, full sort);
tests hold the two together.

The risk measures (ES, VaR, worst) and their exact top-k live in engine/measures.py; the plan of which groups and
option rows the pass reads (`group_plan`, `own_mirrors`, `option_rows`) in engine/scenario_plan.py.

The row-add helpers are inlined into the kernel (numba's IR inlining): called, each took its arrays' reference
counts up and down around its views (atomic operations), 6-10% of the pass; inlined, the parallel kernel takes
about 5 s longer to compile into an empty cache.

Over 600 lines because the fused kernel, the compiled helpers only it calls and its plain numpy twins, which
the tests hold equal, are one unit: apart, a change to the kernel could not be read beside the twin that checks it.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit, prange
from solvent.engine.measures import MEASURE_CODES, reduce_group, risk_measure_numpy
from solvent.engine.riskarrays import RiskArrays
from solvent.engine.scenario_plan import group_plan, option_rows, own_mirrors
from solvent.factors.held import HeldAssets, held_assets

FloatArray = NDArray[np.float64]


@jit(inline=True)
def _add_rows(
    pnl: FloatArray, rows: FloatArray, i: int, q: float, j: int, r: float, start: int, stop: int, column: int
) -> None:
    """pnl[start:stop] += q * rows[i] + r * rows[j], the rows read from `column` on: two positions per pass over
    the scenario buffer."""
    out = pnl[start:stop]  # views: a range index needs no negative-index check, so the loop vectorises
    row_i = rows[i, column : column + stop - start]
    row_j = rows[j, column : column + stop - start]
    for t in range(out.shape[0]):
        out[t] += q * row_i[t] + r * row_j[t]


@jit(inline=True)
def _add_row(pnl: FloatArray, rows: FloatArray, i: int, q: float, start: int, stop: int, column: int) -> None:
    """pnl[start:stop] += q * rows[i], the row read from `column` on."""
    out = pnl[start:stop]
    row = rows[i, column : column + stop - start]
    for t in range(out.shape[0]):
        out[t] += q * row[t]


@jit(inline=True)
def _add_vectors(out: FloatArray, x: FloatArray, q: float, y: FloatArray, r: float) -> None:
    """out += q * x + r * y (1-D views of one length)."""
    for t in range(out.shape[0]):
        out[t] += q * x[t] + r * y[t]


@jit(inline=True)
def _zero(pnl: FloatArray, start: int, stop: int) -> None:
    """pnl[start:stop] = 0 by vector stores, not memset: glibc's memset clears a group of 256 draws (2 KB) with `rep
    stosb`, after which the adds into the group missed L1 (the Monte Carlo pass with its stress groups took a third
    longer). The zero is computed, a length times 0.0 (+0.0: a length is not negative), so that the compiler cannot
    turn the loop back into a memset of a constant."""
    zero = float(stop - start) * 0.0
    out = pnl[start:stop]
    for t in range(out.shape[0]):
        out[t] = zero


@jit(inline=True)
def _add_stretch(pnl: FloatArray, start: int, stop: int, source: FloatArray, at: int) -> None:
    """pnl[start:stop] += source[at:at + stop - start] (an asset's own vector into its joint group)."""
    out = pnl[start:stop]
    part = source[at : at + stop - start]
    for t in range(out.shape[0]):
        out[t] += part[t]


@jit()
def _unit_measures(
    asset_pnl: FloatArray,
    group_offsets: NDArray[np.int64],
    joint: NDArray[np.int64],
    own: NDArray[np.int64],
    confidence: float,
    measure: int,
) -> FloatArray:
    """(A, 2, G): the risk measure of one unit long (0) and one unit short (1) of each asset in each scenario group:
    reduced in the joint groups and the asset's own (`group_plan`), 0 in the others, where its row is 0."""
    n_assets, n_scen = asset_pnl.shape
    n_groups = group_offsets.shape[0] - 1
    unit = np.zeros((n_assets, 2, n_groups))
    pnl = np.empty(n_scen)
    top = np.empty(n_scen + 1)
    for a in range(n_assets):
        for side in range(2):
            sign = 1.0 if side == 0 else -1.0
            for k in range(joint.shape[0] + 1):
                g = joint[k] if k < joint.shape[0] else own[a]
                if g < 0:
                    continue
                start, stop = group_offsets[g], group_offsets[g + 1]
                for s in range(start, stop):
                    pnl[s] = sign * asset_pnl[a, s]
                unit[a, side, g] = reduce_group(pnl, start, stop, confidence, measure, top)
    return unit


@jit()
def _one_asset(delta: FloatArray, held: int, unit: FloatArray) -> float:
    """The margin of a linear book whose net delta is on asset `held` alone (-1: none): |delta| times the unit
    measure of its side in each scenario group, floored at 0, summed."""
    if held < 0:
        return 0.0
    d = delta[held]
    side = 0 if d > 0.0 else 1
    total = 0.0
    for g in range(unit.shape[2]):
        value = abs(d) * unit[held, side, g]
        if value > 0.0:
            total += value
    return total


@jit(inline=True)
def _add_joint(
    pnl: FloatArray,
    rows: FloatArray,
    i: int,
    q: float,
    j: int,
    r: float,
    group_offsets: NDArray[np.int64],
    joint: NDArray[np.int64],
    joint_at: NDArray[np.int64],
) -> None:
    """pnl += q * row i + r * row j (j < 0: row i alone) over the joint groups, group k of `rows` read from column
    joint_at[k]."""
    for k in range(joint.shape[0]):
        g = joint[k]
        if j < 0:
            _add_row(pnl, rows, i, q, group_offsets[g], group_offsets[g + 1], joint_at[k])
        else:
            _add_rows(pnl, rows, i, q, j, r, group_offsets[g], group_offsets[g + 1], joint_at[k])


@jit()
def _option_unit_measures(
    rows: FloatArray,
    row_asset: NDArray[np.int64],
    own: NDArray[np.int64],
    own_at: NDArray[np.int64],
    own_scale: FloatArray,
    group_offsets: NDArray[np.int64],
    confidence: float,
    measure: int,
) -> FloatArray:
    """(R, 2): the risk measure of one unit long (0) and one unit short (1) of the option of each row of `rows`
    (`option_rows`; row_asset its asset, -1 for a row not needed) in its own asset's group (0 where it has none):
    own_scale[a] x the measure of the row read from own_at (`own_mirrors`)."""
    n_rows = row_asset.shape[0]
    unit = np.zeros((n_rows, 2))
    longest = 0
    for g in range(group_offsets.shape[0] - 1):
        longest = max(longest, group_offsets[g + 1] - group_offsets[g])
    pnl = np.empty(longest)
    top = np.empty(longest + 1)
    for i in range(n_rows):
        if row_asset[i] < 0 or own[row_asset[i]] < 0:
            continue
        g = own[row_asset[i]]
        n = group_offsets[g + 1] - group_offsets[g]
        for side in range(2):
            sign = 1.0 if side == 0 else -1.0
            for s in range(n):
                pnl[s] = sign * rows[i, own_at[i] + s]
            unit[i, side] = own_scale[row_asset[i]] * reduce_group(pnl, 0, n, confidence, measure, top)
    return unit


@jit()
def _start_own_groups(
    own_pnl: FloatArray,
    own_start: NDArray[np.int64],
    delta: FloatArray,
    group_offsets: NDArray[np.int64],
    own: NDArray[np.int64],
    option_assets: NDArray[np.int64],
    option_count: NDArray[np.int64],
    first_unit: FloatArray,
    first_quantity: FloatArray,
    scan: NDArray[np.bool_],
) -> tuple[float, bool]:
    """(Σ max(measure, 0) over the own groups of the assets held with one option alone, whether any own group is
    to be built) for an account holding options on `option_assets` (option_count of them on each asset, the first
    with quantity first_quantity and unit measure first_unit of its side in its own group).

    In its own group an asset's P&L is its positions' alone: one option and no net delta is |quantity| x the
    option's unit measure of its side; otherwise the group is marked in `scan` and zeroed, to be built by the
    caller's pass over the rows and measured by `_own_measures`, in own_pnl from own_start[a]: the groups of one
    account side by side from 0, so that the few it builds stay in L1 (at their offsets in the scenario buffer,
    20 assets' groups spread over 40 KB and 200 assets' over 400 KB)."""
    total = 0.0
    scanning = False
    cursor = 0
    for k in range(option_assets.shape[0]):
        a = option_assets[k]
        g = own[a]
        if g < 0:
            continue
        if option_count[a] == 1 and delta[a] == 0.0:  # one option alone in its own group
            q = first_quantity[a]
            value = abs(q) * first_unit[a]
            if value > 0.0:
                total += value
        else:
            scan[a] = True
            scanning = True
            own_start[a] = cursor
            cursor += group_offsets[g + 1] - group_offsets[g]
            _zero(own_pnl, own_start[a], cursor)
    return total, scanning


@jit(inline=True)
def _own_measures(
    pnl: FloatArray,
    own_pnl: FloatArray,
    own_start: NDArray[np.int64],
    rows: FloatArray,
    asset_pnl: FloatArray,
    delta: FloatArray,
    group_offsets: NDArray[np.int64],
    joint: NDArray[np.int64],
    own: NDArray[np.int64],
    own_source: NDArray[np.int64],
    own_scale: FloatArray,
    own_at: NDArray[np.int64],
    own_asset_at: NDArray[np.int64],
    pending: NDArray[np.int64],
    pending_q: FloatArray,
    option_assets: NDArray[np.int64],
    scan: NDArray[np.bool_],
    total: float,
    confidence: float,
    measure: int,
    top: FloatArray,
) -> tuple[float, float]:
    """(total + Σ max(measure, 0) over the own groups marked in `scan` (left False), in option_assets' order, the
    unscaled measure of the last mirrored one (NaN: none)): each (in own_pnl from own_start[a])
    holds its options' P&L (built by the caller) but for the row pending[a] of a mirrored one (quantity
    pending_q[a]; left -1), added here with the net delta (column own_asset_at of asset_pnl); the measure scaled
    by own_scale. A mirrored group then holds its asset's whole P&L in joint group own_source[a] (`own_mirrors`),
    and is added there: the joint P&L is the sum of the held assets' vectors, each built once."""
    whole = np.nan
    for k in range(option_assets.shape[0]):
        a = option_assets[k]
        if not scan[a]:
            continue
        scan[a] = False
        g = own[a]
        start = own_start[a]
        stop = start + group_offsets[g + 1] - group_offsets[g]
        d = delta[a]
        r = pending[a]
        if r >= 0:
            pending[a] = -1
            if d != 0.0:
                at = own_asset_at[a]
                _add_vectors(
                    own_pnl[start:stop],
                    rows[r, own_at[r] : own_at[r] + stop - start],
                    pending_q[a],
                    asset_pnl[a, at : at + stop - start],
                    d,
                )
            else:
                _add_row(own_pnl, rows, r, pending_q[a], start, stop, own_at[r])
        elif d != 0.0:
            _add_row(own_pnl, asset_pnl, a, d, start, stop, own_asset_at[a])
        measured = reduce_group(own_pnl, start, stop, confidence, measure, top)
        value = own_scale[a] * measured
        if value > 0.0:
            total += value
        if own_source[a] >= 0:
            whole = measured
            j = joint[own_source[a]]
            _add_stretch(pnl, group_offsets[j], group_offsets[j + 1], own_pnl, start)
    return total, whole


@jit(parallel=True)
def _margins_kernel(
    pos_offsets: NDArray[np.int64],
    pos_instrument: NDArray[np.int32],
    pos_quantity: FloatArray,
    held_offsets: NDArray[np.int64],
    held_asset: NDArray[np.int64],
    instrument_asset: NDArray[np.int32],
    rows: FloatArray,
    row_of: NDArray[np.int64],
    linear_weight: FloatArray,
    asset_pnl: FloatArray,
    unit_greeks: FloatArray,
    group_offsets: NDArray[np.int64],
    joint: NDArray[np.int64],
    joint_at: NDArray[np.int64],
    own: NDArray[np.int64],
    own_at: NDArray[np.int64],
    own_source: NDArray[np.int64],
    own_scale: FloatArray,
    own_asset_at: NDArray[np.int64],
    option_unit: FloatArray,
    confidence: float,
    measure: int,
    extra_delta: FloatArray,
    out_margin: FloatArray,
    out_greeks: FloatArray,
) -> None:
    """Both outputs are overwritten in place (any previous contents are ignored).

    joint (J,), own (A,): the scenario groups every asset can move in, and each asset's own group or -1
    (`group_plan`); rows, row_of, joint_at, own_at: the options' risk arrays where they can be non-zero
    (`option_rows`); own_scale, own_asset_at (A,): an own group's P&L is own_scale x that of the rows read there
    (`own_mirrors`);
    option_unit (R, 2): each option row's unit measures in its own group (`_option_unit_measures`).
    Per account the scenario P&L is built and reduced over the joint groups. In the own group of an asset it
    holds, its P&L is that asset's positions' alone: one option and no net delta there, or a net delta and no
    option, is |quantity| x the unit measure of its side (positive homogeneity); several, the own group is built
    and reduced. The group of an asset the account does not hold is 0.
    held_offsets (N + 1,), held_asset (H,): each account's assets, ascending (`factors.held.HeldAssets`), every
    asset of its positions and of its row of extra_delta among them; out_greeks (H, 3) is on those rows.
    extra_delta (N, A) or (0, A): units of each asset added to the linear netting (the integrated
    collateral mode); not part of the Greeks.
    """
    n_accounts = pos_offsets.shape[0] - 1
    n_assets = asset_pnl.shape[0]
    n_scen = asset_pnl.shape[1]
    n_joint = joint.shape[0]
    has_own = n_joint < group_offsets.shape[0] - 1
    n_chunks = min(n_accounts, 256)
    has_extra = extra_delta.shape[0] > 0
    unit = _unit_measures(asset_pnl, group_offsets, joint, own, confidence, measure)
    for c in prange(n_chunks):
        pnl = np.empty(n_scen)
        own_pnl = np.empty(n_scen)  # the own groups an account builds, side by side (`_start_own_groups`)
        own_start = np.empty(n_assets, dtype=np.int64)
        delta = np.empty(n_assets)
        top = np.empty(n_scen + 1)
        option_count = np.zeros(n_assets, dtype=np.int64)  # option positions on each asset (0 between accounts)
        first_unit = np.empty(n_assets)  # the unit measure of the first option's side, read as the option is met
        first_quantity = np.empty(n_assets)
        option_assets = np.empty(n_assets, dtype=np.int64)
        scan = np.zeros(n_assets, dtype=np.bool_)  # own groups to build and reduce (False between accounts)
        slot = np.empty(n_assets, dtype=np.int64)  # each held asset's row of out_greeks
        pending_own = np.full(n_assets, -1, dtype=np.int64)  # a mirrored own group's row awaiting a partner
        pending_own_q = np.empty(n_assets)
        delta[:] = 0.0  # 0 off the held assets: an account resets the previous one's
        lo = c * n_accounts // n_chunks
        hi = (c + 1) * n_accounts // n_chunks
        for acct in range(lo, hi):
            if acct > lo:
                for h in range(held_offsets[acct - 1], held_offsets[acct]):
                    delta[held_asset[h]] = 0.0
            first_held, last_held = held_offsets[acct], held_offsets[acct + 1]
            for h in range(first_held, last_held):
                a = held_asset[h]
                slot[a] = h
                delta[a] = extra_delta[acct, a] if has_extra else 0.0
                out_greeks[h, 0] = 0.0
                out_greeks[h, 1] = 0.0
                out_greeks[h, 2] = 0.0
            n_options = 0  # assets with options
            for p in range(pos_offsets[acct], pos_offsets[acct + 1]):  # Greeks, net deltas, the options' assets
                i = pos_instrument[p]
                q = pos_quantity[p]
                a = instrument_asset[i]
                h = slot[a]
                out_greeks[h, 0] += q * unit_greeks[i, 0]
                out_greeks[h, 1] += q * unit_greeks[i, 1]
                out_greeks[h, 2] += q * unit_greeks[i, 2]
                w = linear_weight[i]
                if w != 0.0:
                    delta[a] += q * w
                    continue
                if option_count[a] == 0:
                    option_assets[n_options] = a
                    n_options += 1
                    if has_own:
                        first_unit[a] = option_unit[row_of[i], 0 if q > 0.0 else 1]
                    first_quantity[a] = q
                option_count[a] += 1
            if n_options == 0:  # linear: a risk measure is positively homogeneous, so one asset needs no scenarios
                held = -1
                for h in range(first_held, last_held):
                    if delta[held_asset[h]] != 0.0:
                        held = held_asset[h] if held == -1 else -2
                if held != -2:
                    out_margin[acct] = _one_asset(delta, held, unit)
                    continue
            for k in range(n_joint):
                _zero(pnl, group_offsets[joint[k]], group_offsets[joint[k] + 1])
            options_own, scanning = 0.0, False  # Σ max(measure, 0) over the own groups of the options' assets
            if has_own:
                options_own, scanning = _start_own_groups(
                    own_pnl,
                    own_start,
                    delta,
                    group_offsets,
                    own,
                    option_assets[:n_options],
                    option_count,
                    first_unit,
                    first_quantity,
                    scan,
                )
            pending = -1  # an option waiting for a partner, so rows are added two at a time
            pending_q = 0.0
            for p in range(pos_offsets[acct], pos_offsets[acct + 1]):  # the options' rows, each read once
                i = pos_instrument[p]
                if linear_weight[i] != 0.0:
                    continue
                r = row_of[i]
                q = pos_quantity[p]
                a = instrument_asset[i]
                if scanning and scan[a] and own_source[a] >= 0:  # into its asset's vector, two rows at a time
                    g = own[a]
                    for k in range(n_joint):  # the joint groups it does not mirror (none for the Monte Carlo)
                        if k != own_source[a]:
                            jg = joint[k]
                            _add_row(pnl, rows, r, q, group_offsets[jg], group_offsets[jg + 1], joint_at[k])
                    if pending_own[a] < 0:
                        pending_own[a] = r
                        pending_own_q[a] = q
                    else:
                        _add_rows(
                            own_pnl,
                            rows,
                            pending_own[a],
                            pending_own_q[a],
                            r,
                            q,
                            own_start[a],
                            own_start[a] + group_offsets[g + 1] - group_offsets[g],
                            own_at[r],
                        )
                        pending_own[a] = -1
                    continue
                if pending < 0:
                    pending = r
                    pending_q = q
                else:
                    _add_joint(pnl, rows, pending, pending_q, r, q, group_offsets, joint, joint_at)
                    pending = -1
                if scanning and scan[a]:  # its own group too, while the row is in cache
                    g = own[a]
                    start = own_start[a]
                    _add_row(own_pnl, rows, r, q, start, start + group_offsets[g + 1] - group_offsets[g], own_at[r])
            if pending >= 0:
                _add_joint(pnl, rows, pending, pending_q, -1, 0.0, group_offsets, joint, joint_at)
            own_total = 0.0  # the own groups (floored at 0); the group of an asset not held is 0
            for h in range(first_held, last_held):  # ascending assets, as a pass over every asset adds them
                a = held_asset[h]
                d = delta[a]
                if d == 0.0:
                    continue
                for k in range(n_joint):
                    if scan[a] and k == own_source[a]:  # in its asset's vector
                        continue
                    g = joint[k]
                    _add_row(pnl, asset_pnl, a, d, group_offsets[g], group_offsets[g + 1], group_offsets[g])
                g = own[a]
                if g >= 0 and option_count[a] == 0:  # a net delta alone in its own group
                    value = abs(d) * unit[a, 0 if d > 0.0 else 1, g]
                    if value > 0.0:
                        own_total += value
            for k in range(n_options):
                option_count[option_assets[k]] = 0
            # One asset held, its own group mirroring the one joint group: the joint P&L is its vector exactly
            # (0 + v), so the joint measure is the own group's, unscaled, and is not reduced again.
            whole_is_joint = n_joint == 1 and last_held - first_held == 1
            if whole_is_joint:
                a = held_asset[first_held]
                whole_is_joint = scan[a] and own_source[a] == 0
            whole = np.nan
            if scanning:  # an own group to build
                options_own, whole = _own_measures(
                    pnl,
                    own_pnl,
                    own_start,
                    rows,
                    asset_pnl,
                    delta,
                    group_offsets,
                    joint,
                    own,
                    own_source,
                    own_scale,
                    own_at,
                    own_asset_at,
                    pending_own,
                    pending_own_q,
                    option_assets[:n_options],
                    scan,
                    options_own,
                    confidence,
                    measure,
                    top,
                )
            own_total += options_own
            total = 0.0
            for k in range(n_joint):
                g = joint[k]
                if whole_is_joint:
                    value = whole
                else:
                    value = reduce_group(pnl, group_offsets[g], group_offsets[g + 1], confidence, measure, top)
                if value > 0.0:
                    total += value
            out_margin[acct] = total + own_total


def margins(
    pos_offsets: NDArray[np.int64],
    pos_instrument: NDArray[np.int32],
    pos_quantity: FloatArray,
    arrays: RiskArrays,
    confidence: float,
    measure: str,
    out: tuple[FloatArray, FloatArray] | None = None,
    extra_delta: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Market-risk margin (N,) and Greeks per asset (N, A, 3) for N accounts in CSR form: `held_margins` with
    the Greeks' dense view.

    `out` may pass the two output arrays to reuse; they are overwritten.
    `extra_delta` (N, A), optional: units of each asset netted with the linear positions in the
    scenarios but kept out of the Greeks (collateral held as spot, the integrated collateral mode).
    """
    n = pos_offsets.shape[0] - 1
    if out is not None and (out[0].shape != (n,) or out[1].shape != (n, arrays.n_assets, 3)):
        raise ValueError("output buffers do not match the book and the risk arrays")
    extra_offsets: NDArray[np.int64] | None = None
    extra_asset: NDArray[np.int64] | None = None
    if extra_delta is not None:
        extra = np.asarray(extra_delta)
        if extra.shape != (n, arrays.n_assets):
            raise ValueError(f"extra_delta must be ({n}, {arrays.n_assets}), got {extra.shape}")
        account, extra_asset = np.nonzero(extra)
        extra_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(account, minlength=n), out=extra_offsets[1:])
    pos_asset = arrays.instrument_asset[pos_instrument]
    held = held_assets(pos_offsets, pos_asset, arrays.n_assets, extra_offsets, extra_asset)
    margin = None if out is None else out[0]
    margin, held_greeks = held_margins(
        pos_offsets, pos_instrument, pos_quantity, arrays, confidence, measure, held, margin, extra_delta
    )
    if out is None:
        return margin, held.dense(held_greeks)
    out[1][:] = held.dense(held_greeks)
    return margin, out[1]


def held_margins(
    pos_offsets: NDArray[np.int64],
    pos_instrument: NDArray[np.int32],
    pos_quantity: FloatArray,
    arrays: RiskArrays,
    confidence: float,
    measure: str,
    held: HeldAssets,
    out: FloatArray | None = None,
    extra_delta: FloatArray | None = None,
    out_greeks: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Market-risk margin (N,) and the Greeks (H, 3) on the rows of `held` (the assets of each account's
    positions, and of its row of `extra_delta`, among them: `factors.held.held_assets`).

    `out` (N,) and `out_greeks` (H, 3) may pass the output arrays to reuse (a streaming caller re-margining
    the same book saves allocating and first touching them); they are overwritten.
    `extra_delta` (N, A), optional: units of each asset netted with the linear positions in the
    scenarios but kept out of the Greeks (collateral held as spot, the integrated collateral mode).
    """
    n = pos_offsets.shape[0] - 1
    out_margin = np.empty(n, dtype=np.float64) if out is None else out
    greeks = np.empty((held.n_rows, 3), dtype=np.float64) if out_greeks is None else out_greeks
    if out_margin.shape != (n,) or greeks.shape != (held.n_rows, 3) or held.n_accounts != n:
        raise ValueError("output buffers do not match the book and the risk arrays")
    if extra_delta is None:
        extra = np.zeros((0, arrays.n_assets), dtype=np.float64)
    else:
        extra = np.ascontiguousarray(extra_delta, dtype=np.float64)
        if extra.shape != (n, arrays.n_assets):
            raise ValueError(f"extra_delta must be ({n}, {arrays.n_assets}), got {extra.shape}")
    if n:
        joint, own = group_plan(arrays)
        source, own_scale = own_mirrors(arrays, joint, own)
        needed = arrays.linear_weight == 0.0
        if pos_instrument.shape[0] < needed.shape[0]:  # a small book: the options it holds only
            held_options = np.zeros(needed.shape[0], dtype=np.bool_)
            held_options[pos_instrument] = True
            needed &= held_options
        rows, row_of, row_asset, joint_at, own_at, own_asset_at = option_rows(arrays, joint, own, source, needed)
        code = MEASURE_CODES[measure]
        option_unit = _option_unit_measures(
            rows, row_asset, own, own_at, own_scale, arrays.group_offsets, confidence, code
        )
        _margins_kernel(
            pos_offsets,
            pos_instrument,
            pos_quantity,
            held.offsets,
            held.asset,
            arrays.instrument_asset,
            rows,
            row_of,
            arrays.linear_weight,
            arrays.asset_pnl,
            arrays.unit_greeks,
            arrays.group_offsets,
            joint,
            joint_at,
            own,
            own_at,
            source,
            own_scale,
            own_asset_at,
            option_unit,
            confidence,
            code,
            extra,
            out_margin,
            greeks,
        )
    return out_margin, greeks


def scenario_pnl_numpy(
    pos_offsets: NDArray[np.int64], pos_instrument: NDArray[np.int32], pos_quantity: FloatArray, arrays: RiskArrays
) -> FloatArray:
    """Dense (N, S) scenario P&L without netting: positions x instrument risk arrays."""
    n = pos_offsets.shape[0] - 1
    is_linear = arrays.linear_weight != 0.0
    per_unit = np.where(
        is_linear[:, np.newaxis],
        arrays.linear_weight[:, np.newaxis] * arrays.asset_pnl[arrays.instrument_asset],
        arrays.instrument_pnl,
    )
    from scipy import sparse  # the twin only: keep scipy out of the engine's import time

    positions = sparse.csr_matrix((pos_quantity, pos_instrument, pos_offsets), shape=(n, per_unit.shape[0]))
    return np.asarray(positions @ per_unit, dtype=np.float64)


def margins_numpy(
    pos_offsets: NDArray[np.int64],
    pos_instrument: NDArray[np.int32],
    pos_quantity: FloatArray,
    arrays: RiskArrays,
    confidence: float,
    measure: str,
    chunk: int = 50_000,
    extra_delta: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """The numpy twin of `margins`: same outputs, built from a dense P&L matrix per chunk
    (`extra_delta` (N, A) adds extra_delta @ asset_pnl to each account's scenario P&L)."""
    n = pos_offsets.shape[0] - 1
    out_margin = np.zeros(n, dtype=np.float64)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        offsets = pos_offsets[lo : hi + 1] - pos_offsets[lo]
        sl = slice(int(pos_offsets[lo]), int(pos_offsets[hi]))
        pnl = scenario_pnl_numpy(offsets, pos_instrument[sl], pos_quantity[sl], arrays)
        if extra_delta is not None:
            pnl = pnl + extra_delta[lo:hi] @ arrays.asset_pnl
        g = arrays.group_offsets
        for start, stop in itertools.pairwise(g):
            part = risk_measure_numpy(-pnl[:, start:stop], confidence, measure)
            out_margin[lo:hi] += np.maximum(part, 0.0)
    account = np.repeat(np.arange(n), np.diff(pos_offsets))
    greeks = np.zeros((n, arrays.n_assets, 3), dtype=np.float64)
    np.add.at(
        greeks,
        (account, arrays.instrument_asset[pos_instrument]),
        pos_quantity[:, np.newaxis] * arrays.unit_greeks[pos_instrument],
    )
    return out_margin, greeks
