"""The health screen: the accounts a price move cannot have changed, so a cycle re-margins only the others.

Without it the streaming engine re-margins every account exposed to an asset that moved: at one-second
cycles over 100,000 accounts that is the whole book every second. With it (`StreamEngine(screen=True)`) an
account is re-margined only when the move since its last re-margin could have changed its status (healthy,
margin call, liquidatable), its liquidation (which stops at target x IM) or its early flag; the events are
the same as without it, and its figures (IM, MM, equity, breach probability) are those of its last re-margin
until then. An account due a liquidation slice is margined afresh by the liquidation pass itself.

An account is **screened** when its risk is linear in one asset: every position it holds linear (perpetual,
future, spot) on that asset, collateral in the settlement currency only, and the asset priced directly (an
asset priced from oracle sources moves IM through its live uncertainty, not only its price). After a
re-margin at price p0 with equity E, IM I, MM M and delta notional x (g = |x|), for a relative move
r = p / p0 - 1:

- equity is linear in the price: E(p) = E + x r (exact for linear positions and settlement-currency cash;
  a haircut on remote profits only flattens it);
- IM and MM move by at most `GROWTH` x their size per unit of r while |r| <= `MAX_MOVE`:
  |I(p) - I| <= GROWTH I |r|. Within an epoch (scenarios, vols, depth fixed) every term of the multi-factor
  model is proportional to the position's notional (growth 1), as are the static and percentage rules; the
  size-scaled rates (IMF growing with the square root of notional, the concentration add-on) grow as
  notional^1.5 at most, and |(1 + r)^1.5 - 1| <= 2 |r| for |r| <= 0.1 (the quantity is fixed: Synthetix's ratio,
  quadratic in size, is linear in the price). An IMF ramping with notional (concentration form "ramp") may grow
  faster: the engine screens no account under it. tests/test_screen.py checks the bound on every model the
  stream runs;
- the breach probability P of d = E - M > 0 over the horizon h, with σ = g vol and drift μ = x v (vol the larger
  of the asset's and its fast volatility, v its price velocity): the running minimum of d + μ t + σ W_t lies
  between d - μ⁻ h + σ min W_t and d + μ⁺ h + σ min W_t, so 2 Φ(-(d - μ⁻ h) / (σ √h)) >= P >=
  2 Φ(-(d + μ⁺ h) / (σ √h)) (μ⁻ = max(-μ, 0), μ⁺ = max(μ, 0)). With z = Φ⁻¹(1 - threshold / 2), an
  account cannot be flagged while d > g a, a = μ⁻ h / g + z vol √h its "adverse reach"; and a flagged one
  stays flagged while d < g (z vol₀ √h / s - f), f = μ⁺ h / g its "favourable reach", vol₀ the asset's
  volatility of the epoch (the breach probability never sees less).

From these bounds the screen solves for the largest |r| = R keeping each threshold on its side:

    healthy:         (E - I + dust) / (g + GROWTH I)                 (before equity falls below IM)
    margin call:     min((I - dust - E) / (g + GROWTH I), (E - M + dust) / (g + GROWTH M))
    liquidatable:    (M - dust - E) / (g + GROWTH M)
    in liquidation:  also (target I - dust - E) / (g + GROWTH target I)
    not flagged:     (E - M - s g c) / (g + GROWTH M + s g c),          c: cap on the adverse reach
    flagged:         (g ℓ - g c - (E - M)) / (g + GROWTH M + g c + g ℓ), ℓ = z vol₀ √h / s, c: cap on the
                     favourable reach; and (E - M) / (g + GROWTH M) (the flag needs E >= M)

each less a relative rounding allowance, and R <= MAX_MOVE; s = `SAFETY`. The caps are `REACH_HEADROOM` times
the reach at the re-margin (the favourable one at least a tenth of z vol₀ √h). The account is due again when
the price leaves [p0 (1 - R), p0 (1 + R)] or the asset's reach passes its cap. Accounts that do not qualify,
those with no room (R <= 0), and flagged ones when an early flag deleverages, are **hot**: re-margined
whenever an asset they are exposed to moves, as without the screen. Per cycle the screen costs O(assets)
while every price stays inside every band (the bands' extremes are kept per asset), and one pass over the
accounts when a price leaves them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from solvent._numba import jit
from solvent.liquidation.predictive import SECONDS_PER_YEAR
from solvent.params import PredictiveParams

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: How much faster than notional a requirement may grow with price (see the module): 2.
GROWTH = 2.0
#: The largest relative move a band allows (the growth bound holds up to it): 10%.
MAX_MOVE = 0.1
#: Head-room on the flag's distances, against rounding in the breach probability: 1%.
SAFETY = 1.01
#: Relative rounding allowed on equity and requirements (they are sums of many terms).
ROUNDING = 1e-12
#: A band's reach cap over the reach at its re-margin: re-margined when the reach has grown by 25%.
REACH_HEADROOM = 1.25

#: The columns of `flag_reach`: adverse for a long, for a short; favourable for a long, for a short.
ADVERSE, FAVOURABLE = 0, 2


def flag_reach(vol: FloatArray, velocity: FloatArray, params: PredictiveParams) -> FloatArray:
    """(A, 4) per asset and unit of delta notional: the adverse reach μ⁻ h / g + z vol √h of a long and of a
    short (columns 0, 1), and the favourable reach μ⁺ h / g of a long and of a short (2, 3); vol (A,)
    annualised, velocity (A,) per year (NaN read as 0; ignored unless `params.use_drift`)."""
    h = params.horizon_seconds / SECONDS_PER_YEAR
    v = np.nan_to_num(velocity, nan=0.0) if params.use_drift else np.zeros_like(vol)
    falling, rising = np.maximum(-v, 0.0) * h, np.maximum(v, 0.0) * h
    diffusion = diffusion_reach(vol, params)
    reach: FloatArray = np.stack([falling + diffusion, rising + diffusion, rising, falling], axis=1)
    return reach


def diffusion_reach(vol: FloatArray, params: PredictiveParams) -> FloatArray:
    """(A,) z vol √h: the distance to MM, per unit of delta notional, at which a driftless account's breach
    probability is the threshold (2 Φ(-z) = threshold)."""
    h = params.horizon_seconds / SECONDS_PER_YEAR
    reach: FloatArray = float(ndtri(1.0 - params.threshold / 2.0)) * vol * math.sqrt(h)
    return reach


class HealthScreen:
    """Bands of the screened accounts and the hot set (see the module). `asset[k]` is the screened account's
    asset column, -1 when it is not screened (hot, or holding no position)."""

    def __init__(self, n_accounts: int, n_assets: int) -> None:
        self.n_assets = n_assets
        self.asset = np.full(n_accounts, -1, dtype=np.int64)
        self.low = np.zeros(n_accounts)
        self.high = np.zeros(n_accounts)
        self.column = np.zeros(n_accounts, dtype=np.int64)  # which reach of `flag_reach` the cap bounds
        self.cap = np.zeros(n_accounts)
        self.hot = np.ones(n_accounts, dtype=np.bool_)  # nothing is known before the first re-margin
        # Per asset: the highest lower band, the lowest upper band, per reach column the lowest cap. They may be
        # tighter than the bands now (a band that widened is still counted): a pre-filter, never a miss.
        self.top_low = np.full(n_assets, np.inf)  # inf: nothing known, the first cycle scans every account
        self.bottom_high = np.full(n_assets, -np.inf)
        self.bottom_cap = np.full((n_assets, 4), -np.inf)

    def hot_rows(self) -> IndexArray:
        """The hot accounts, ascending."""
        return np.flatnonzero(self.hot).astype(np.int64)

    def screened_rows(self) -> IndexArray:
        """The screened accounts (their figures may date from an earlier cycle), ascending."""
        return np.flatnonzero(self.asset >= 0).astype(np.int64)

    def update(self, rows: IndexArray, holdings: Holdings, figures: Standing, market: Reach) -> None:
        """New bands for `rows` (K,) just re-margined: what they hold, where they stand, the market now."""
        _bands(
            rows,
            holdings.start,
            holdings.count,
            holdings.instrument,
            holdings.quantity,
            holdings.instrument_asset,
            holdings.linear,
            holdings.excluded,
            market.sourced,
            figures.delta,
            market.price,
            figures.equity,
            figures.im,
            figures.mm,
            figures.status,
            figures.flagged,
            figures.in_liquidation,
            market.reach,
            market.diffusion,
            figures.dust,
            figures.target,
            figures.deleverage,
            self.asset,
            self.low,
            self.high,
            self.column,
            self.cap,
            self.hot,
        )
        _fold(
            rows,
            self.asset,
            self.low,
            self.high,
            self.column,
            self.cap,
            self.top_low,
            self.bottom_high,
            self.bottom_cap,
        )

    def due(self, moved: BoolArray, price: FloatArray, reach: FloatArray) -> IndexArray:
        """Screened accounts on a `moved` (A,) asset whose band the price has left or whose reach cap the asset's
        reach (A, 4) has passed, ascending."""
        check = moved & ((price <= self.top_low) | (price >= self.bottom_high) | (reach > self.bottom_cap).any(axis=1))
        if not check.any():
            return np.zeros(0, dtype=np.int64)
        out = np.empty(self.asset.size, dtype=np.int64)
        n = _due(
            self.asset,
            self.low,
            self.high,
            self.column,
            self.cap,
            price,
            reach,
            check,
            out,
            self.top_low,
            self.bottom_high,
            self.bottom_cap,
        )
        return out[:n]


@dataclass(frozen=True, eq=False)
class Holdings:
    """What the re-margined accounts hold, read by the band kernel: the store's slot layout (start, count per
    account (N,); instrument, quantity per slot), each instrument's asset column and linearity, and `excluded`
    (K,): the account cannot be screened whatever it holds (collateral other than the settlement currency, or
    a margin model whose requirement may grow faster than `GROWTH`)."""

    start: IndexArray
    count: IndexArray
    instrument: NDArray[np.int32]
    quantity: FloatArray
    instrument_asset: IndexArray
    linear: BoolArray
    excluded: BoolArray


@dataclass(frozen=True, eq=False, kw_only=True)
class Standing:
    """Where the re-margined accounts (K,) stand: delta (K, A) in units of each asset, equity, IM, MM, status
    (0 healthy, 1 margin call, 2 liquidatable), flagged, in liquidation; and the rules: dust (USD), the
    liquidation target, whether an early flag deleverages."""

    delta: FloatArray
    equity: FloatArray
    im: FloatArray
    mm: FloatArray
    status: NDArray[np.int8]
    flagged: BoolArray
    in_liquidation: BoolArray
    dust: float
    target: float
    deleverage: bool


@dataclass(frozen=True, eq=False)
class Reach:
    """The market now: price (A,), reach (A, 4) (`flag_reach`), the epoch's diffusion reach (A,)
    (`diffusion_reach` of the snapshot's vols), and which assets oracle sources price (A,)."""

    price: FloatArray
    reach: FloatArray
    diffusion: FloatArray
    sourced: BoolArray


@jit()
def _ratio(numerator: float, denominator: float) -> float:  # pragma: no cover - compiled
    """The move a distance allows: numerator / denominator; +inf where the denominator is 0 (no delta and no
    requirement: nothing moves with the price)."""
    if denominator > 0.0:
        return numerator / denominator
    return math.inf


@jit()
def _bands(
    rows: IndexArray,
    start: IndexArray,
    count: IndexArray,
    instrument: NDArray[np.int32],
    quantity: FloatArray,
    instrument_asset: IndexArray,
    linear: BoolArray,
    excluded: BoolArray,
    sourced: BoolArray,
    delta: FloatArray,
    price: FloatArray,
    equity: FloatArray,
    im: FloatArray,
    mm: FloatArray,
    status: NDArray[np.int8],
    flagged: BoolArray,
    in_liquidation: BoolArray,
    reach: FloatArray,
    diffusion: FloatArray,
    dust: float,
    target: float,
    deleverage: bool,
    out_asset: IndexArray,
    out_low: FloatArray,
    out_high: FloatArray,
    out_column: IndexArray,
    out_cap: FloatArray,
    out_hot: BoolArray,
) -> None:  # pragma: no cover - compiled
    """Writes each row's band (see the module) into the screen's (N,) arrays."""
    for k in range(rows.size):
        row = rows[k]
        a = -1
        ok = not excluded[k]
        for s in range(start[row], start[row] + count[row]):
            if not ok:
                break
            if quantity[s] == 0.0:
                continue
            i = instrument[s]
            if not linear[i] or (a >= 0 and instrument_asset[i] != a):
                ok = False
            a = instrument_asset[i]
        if ok and a >= 0 and sourced[a]:
            ok = False
        out_asset[row] = -1
        out_hot[row] = True
        if not ok:
            continue
        if a < 0:  # holding no position: no price moves it
            out_hot[row] = False
            continue
        e, i_m, m_m = equity[k], im[k], mm[k]
        x = delta[k, a] * price[a]
        g = abs(x)
        side = 1 if x < 0.0 else 0
        slack = ROUNDING * (abs(e) + i_m + g)
        if status[k] == 0:
            move = _ratio(e - i_m + dust - slack, g + GROWTH * i_m)
        elif status[k] == 1:
            move = min(
                _ratio(i_m - dust - e - slack, g + GROWTH * i_m), _ratio(e - m_m + dust - slack, g + GROWTH * m_m)
            )
        else:
            move = _ratio(m_m - dust - e - slack, g + GROWTH * m_m)
        column = ADVERSE + side
        cap = math.inf
        if in_liquidation[k]:  # never flagged while in liquidation, which stops at target x IM
            move = min(move, _ratio(target * i_m - dust - e - slack, g + GROWTH * target * i_m))
        elif flagged[k]:
            if deleverage:
                continue  # a flag deleverages: a liquidation candidate every cycle
            column = FAVOURABLE + side
            cap = max(REACH_HEADROOM * reach[a, column], 0.1 * diffusion[a])
            floor = diffusion[a] / SAFETY
            move = min(move, _ratio(g * floor - g * cap - (e - m_m) - slack, g + GROWTH * m_m + g * cap + g * floor))
            move = min(move, _ratio(e - m_m - slack, g + GROWTH * m_m))
        else:
            cap = REACH_HEADROOM * reach[a, column]
            move = min(move, _ratio(e - m_m - SAFETY * g * cap - slack, g + GROWTH * m_m + SAFETY * g * cap))
        move = min(move, MAX_MOVE)
        if not move > 0.0:
            continue  # no room: hot
        out_asset[row] = a
        out_hot[row] = False
        out_low[row] = price[a] * (1.0 - move)
        out_high[row] = price[a] * (1.0 + move)
        out_column[row] = column
        out_cap[row] = cap


@jit()
def _fold(
    rows: IndexArray,
    asset: IndexArray,
    low: FloatArray,
    high: FloatArray,
    column: IndexArray,
    cap: FloatArray,
    top_low: FloatArray,
    bottom_high: FloatArray,
    bottom_cap: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Fold the new bands of `rows` into the per-asset extremes."""
    for row in rows:
        a = asset[row]
        if a >= 0:
            top_low[a] = max(top_low[a], low[row])
            bottom_high[a] = min(bottom_high[a], high[row])
            bottom_cap[a, column[row]] = min(bottom_cap[a, column[row]], cap[row])


@jit()
def _due(
    asset: IndexArray,
    low: FloatArray,
    high: FloatArray,
    column: IndexArray,
    cap: FloatArray,
    price: FloatArray,
    reach: FloatArray,
    check: BoolArray,
    out: IndexArray,
    top_low: FloatArray,
    bottom_high: FloatArray,
    bottom_cap: FloatArray,
) -> int:  # pragma: no cover - compiled
    """Writes the due accounts of the `check`ed assets to `out`, ascending, and returns how many; the extremes
    become exactly those of the accounts not due (the due ones are folded in again once re-margined)."""
    top_low[:] = -np.inf
    bottom_high[:] = np.inf
    bottom_cap[:, :] = np.inf
    n = 0
    for k in range(asset.size):
        a = asset[k]
        if a < 0:
            continue
        if check[a] and (price[a] <= low[k] or price[a] >= high[k] or reach[a, column[k]] > cap[k]):
            out[n] = k
            n += 1
        else:
            top_low[a] = max(top_low[a], low[k])
            bottom_high[a] = min(bottom_high[a], high[k])
            bottom_cap[a, column[k]] = min(bottom_cap[a, column[k]], cap[k])
    return n
