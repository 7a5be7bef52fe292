"""Account scenario P&L reduced to a margin, fused: the accounts x scenarios matrix is never built.

For each account the kernel nets its linear positions into one delta per asset, adds each option's
risk array, and reduces the resulting scenario P&L with the risk measure within each scenario group;
group results (floored at 0) are summed. It also accumulates the account's Greeks per asset. A linear
account whose net delta is on one asset only (the common perpetual trader) skips the scenarios: every
measure below is positively homogeneous, so its margin is |delta| times the measure of one unit of its side
(computed once per call for every asset and side), the same figure up to rounding.

`margins_numpy` is the plain, obviously correct twin (dense P&L per chunk of accounts, full sort);
tests hold the two together.

Risk measures on n equally weighted losses L(1) >= L(2) >= ... at confidence c, with m = n (1 - c)
and j = floor(m), m snapped to the nearest integer when within 1e-9 of it (`tail_mass`: in floating point
10 x (1 - 0.9) is 0.9999999999999998, and a bare floor would take L(1) for the 90% VaR of 10 losses):
  ES    = (L(1) + ... + L(j) + (m - j) L(j+1)) / m     (= L(1) when m < 1)
  VaR   = L(j+1)   (the smallest loss exceeded by at most a fraction 1 - c of scenarios)
  worst = L(1)
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit, prange
from solvent.engine.riskarrays import RiskArrays

FloatArray = NDArray[np.float64]

ES, VAR, WORST = 0, 1, 2
MEASURE_CODES = {"es": ES, "var": VAR, "worst": WORST}


@jit()
def tail_mass(n: int, confidence: float) -> float:
    """m = n (1 - c), snapped to the nearest integer when within 1e-9 (relative, at least absolute) of it, so
    that floor(m) counts the tail's whole observations whatever the rounding of 1 - c (n = 10, c = 0.9: 1, not
    0.9999999999999998)."""
    m = n * (1.0 - confidence)
    whole = math.floor(m + 0.5)
    if abs(m - whole) <= 1e-9 * max(1.0, m):
        return float(whole)
    return m


@jit()
def _tail_count(n: int, confidence: float, measure: int) -> tuple[float, int]:
    """(m, k): tail mass m = n (1 - c) (`tail_mass`) and how many largest losses the measure needs."""
    if measure == WORST:
        return 1.0, 1
    m = tail_mass(n, confidence)
    k = math.floor(m) + 1
    return m, min(k, n)


@jit()
def _reduce_group(pnl: FloatArray, start: int, stop: int, confidence: float, measure: int, top: FloatArray) -> float:
    """Risk measure of losses -pnl[start:stop], keeping the k largest losses in `top` (descending)."""
    n = stop - start
    if n == 0:
        return 0.0
    m, k = _tail_count(n, confidence, measure)
    for j in range(k):
        top[j] = -np.inf
    cut = -np.inf  # the k-th largest loss so far: most scenarios fail this one comparison
    for s in range(start, stop):
        loss = -pnl[s]
        if loss <= cut:
            continue
        j = k - 1
        while j > 0 and top[j - 1] < loss:
            top[j] = top[j - 1]
            j -= 1
        top[j] = loss
        cut = top[k - 1]
    if measure == WORST:
        return float(top[0])
    whole = math.floor(m)
    if measure == VAR:
        return float(top[min(whole, n - 1)])
    if m < 1.0:
        return float(top[0])
    total = 0.0
    for i in range(whole):
        total += top[i]
    if whole < n:
        total += (m - whole) * top[whole]
    return total / m


@jit()
def _add_rows(pnl: FloatArray, rows: FloatArray, i: int, q: float, j: int, r: float) -> None:
    """pnl += q * rows[i] + r * rows[j]: two positions per pass over the scenario buffer."""
    for s in range(pnl.shape[0]):
        pnl[s] += q * rows[i, s] + r * rows[j, s]


@jit()
def _unit_measures(
    asset_pnl: FloatArray, group_offsets: NDArray[np.int64], confidence: float, measure: int
) -> FloatArray:
    """(A, 2, G): the risk measure of one unit long (0) and one unit short (1) of each asset in each scenario group."""
    n_assets, n_scen = asset_pnl.shape
    n_groups = group_offsets.shape[0] - 1
    unit = np.empty((n_assets, 2, n_groups))
    pnl = np.empty(n_scen)
    top = np.empty(n_scen + 1)
    for a in range(n_assets):
        for side in range(2):
            sign = 1.0 if side == 0 else -1.0
            for s in range(n_scen):
                pnl[s] = sign * asset_pnl[a, s]
            for g in range(n_groups):
                unit[a, side, g] = _reduce_group(pnl, group_offsets[g], group_offsets[g + 1], confidence, measure, top)
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


@jit(parallel=True)
def _margins_kernel(
    pos_offsets: NDArray[np.int64],
    pos_instrument: NDArray[np.int32],
    pos_quantity: FloatArray,
    instrument_asset: NDArray[np.int32],
    instrument_pnl: FloatArray,
    linear_weight: FloatArray,
    asset_pnl: FloatArray,
    unit_greeks: FloatArray,
    group_offsets: NDArray[np.int64],
    confidence: float,
    measure: int,
    extra_delta: FloatArray,
    out_margin: FloatArray,
    out_greeks: FloatArray,
) -> None:
    """Both outputs are overwritten in place (any previous contents are ignored).

    extra_delta (N, A) or (0, A): units of each asset added to the linear netting (the integrated
    collateral mode); not part of the Greeks.
    """
    n_accounts = pos_offsets.shape[0] - 1
    n_assets = asset_pnl.shape[0]
    n_scen = asset_pnl.shape[1]
    n_groups = group_offsets.shape[0] - 1
    n_chunks = min(n_accounts, 256)
    has_extra = extra_delta.shape[0] > 0
    unit = _unit_measures(asset_pnl, group_offsets, confidence, measure)
    for c in prange(n_chunks):
        pnl = np.empty(n_scen)
        delta = np.empty(n_assets)
        top = np.empty(n_scen + 1)
        lo = c * n_accounts // n_chunks
        hi = (c + 1) * n_accounts // n_chunks
        for acct in range(lo, hi):
            if has_extra:
                delta[:] = extra_delta[acct]
            else:
                delta[:] = 0.0
            out_greeks[acct] = 0.0
            pending = -1  # an option waiting for a partner, so rows are added two at a time
            pending_q = 0.0
            options = False
            for p in range(pos_offsets[acct], pos_offsets[acct + 1]):
                i = pos_instrument[p]
                q = pos_quantity[p]
                a = instrument_asset[i]
                out_greeks[acct, a, 0] += q * unit_greeks[i, 0]
                out_greeks[acct, a, 1] += q * unit_greeks[i, 1]
                out_greeks[acct, a, 2] += q * unit_greeks[i, 2]
                w = linear_weight[i]
                if w != 0.0:
                    delta[a] += q * w
                    continue
                if not options:  # the scenario P&L is needed: start it at the first option
                    pnl[:] = 0.0
                    options = True
                if pending < 0:
                    pending = i
                    pending_q = q
                else:
                    _add_rows(pnl, instrument_pnl, pending, pending_q, i, q)
                    pending = -1
            if not options:  # linear: a risk measure is positively homogeneous, so one asset needs no scenarios
                held = -1
                for a in range(n_assets):
                    if delta[a] != 0.0:
                        held = a if held == -1 else -2
                if held != -2:
                    out_margin[acct] = _one_asset(delta, held, unit)
                    continue
                pnl[:] = 0.0
            if pending >= 0:
                for s in range(n_scen):
                    pnl[s] += pending_q * instrument_pnl[pending, s]
            for a in range(n_assets):
                d = delta[a]
                if d != 0.0:
                    for s in range(n_scen):
                        pnl[s] += d * asset_pnl[a, s]
            total = 0.0
            for g in range(n_groups):
                value = _reduce_group(pnl, group_offsets[g], group_offsets[g + 1], confidence, measure, top)
                if value > 0.0:
                    total += value
            out_margin[acct] = total


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
    """Market-risk margin (N,) and Greeks per asset (N, A, 3) for N accounts in CSR form.

    `out` may pass the two output arrays to reuse (a streaming caller re-margining the same book
    saves allocating, and first touching, the Greeks array each time); they are overwritten.
    `extra_delta` (N, A), optional: units of each asset netted with the linear positions in the
    scenarios but kept out of the Greeks (collateral held as spot, the integrated collateral mode).
    """
    n = pos_offsets.shape[0] - 1
    if out is None:
        out_margin = np.empty(n, dtype=np.float64)
        out_greeks = np.empty((n, arrays.n_assets, 3), dtype=np.float64)
    else:
        out_margin, out_greeks = out
        if out_margin.shape != (n,) or out_greeks.shape != (n, arrays.n_assets, 3):
            raise ValueError("output buffers do not match the book and the risk arrays")
    if extra_delta is None:
        extra = np.zeros((0, arrays.n_assets), dtype=np.float64)
    else:
        extra = np.ascontiguousarray(extra_delta, dtype=np.float64)
        if extra.shape != (n, arrays.n_assets):
            raise ValueError(f"extra_delta must be ({n}, {arrays.n_assets}), got {extra.shape}")
    if n:
        _margins_kernel(
            pos_offsets,
            pos_instrument,
            pos_quantity,
            arrays.instrument_asset,
            arrays.instrument_pnl,
            arrays.linear_weight,
            arrays.asset_pnl,
            arrays.unit_greeks,
            arrays.group_offsets,
            confidence,
            MEASURE_CODES[measure],
            extra,
            out_margin,
            out_greeks,
        )
    return out_margin, out_greeks


def risk_measure_numpy(losses: FloatArray, confidence: float, measure: str) -> FloatArray:
    """The measure of each row of `losses` (rows x n), by a full sort: the reference definition."""
    n = losses.shape[1]
    if n == 0:
        return np.zeros(losses.shape[0])
    ordered = -np.sort(-losses, axis=1)
    if measure == "worst":
        return np.asarray(ordered[:, 0], dtype=np.float64)
    m = tail_mass(n, confidence)
    whole = math.floor(m)
    if measure == "var":
        return np.asarray(ordered[:, min(whole, n - 1)], dtype=np.float64)
    if m < 1.0:
        return np.asarray(ordered[:, 0], dtype=np.float64)
    tail = ordered[:, :whole].sum(axis=1)
    if whole < n:
        tail = tail + (m - whole) * ordered[:, whole]
    return np.asarray(tail / m, dtype=np.float64)


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
