"""The health screen: the accounts a price move cannot have changed, so a cycle re-margins only the others.

Without it the streaming engine re-margins every account exposed to an asset that moved: at one-second
cycles over 100,000 accounts that is the whole book every second. With it (`StreamEngine(screen=True)`) an
account is re-margined only when the move since its last re-margin could have changed its status (healthy,
margin call) or raised its early flag; the events are the same as without it, and its figures (IM, MM,
equity, breach probability) are those of its last re-margin until then.

An account is **screened** when its risk is linear in one asset: every position linear (perpetual, future,
spot) on that asset, collateral in the settlement currency only, and the asset priced directly (an asset
priced from oracle sources moves IM through its live uncertainty, not only through its price). After a
re-margin at price p0 with equity E, IM I, MM M and delta notional x, for a relative move r = p / p0 - 1:

- equity is linear in the price: E(p) = E + x r (exact for linear positions and settlement-currency cash);
- IM and MM move by at most `GROWTH` x their size per unit of r while |r| <= `MAX_MOVE`:
  |I(p) - I| <= GROWTH I |r|. Within an epoch (scenarios, vols, depth fixed) every term of the multi-factor
  model is proportional to the position's notional (growth 1), as are the static and percentage rules; the
  size-scaled rates (dYdX's IMF growing with the square root of notional, the concentration add-on) grow as
  notional^1.5 at most, and (1 + r)^1.5 <= 1 + 2 r for |r| <= 0.1. tests/test_screen.py checks the bound on
  every model the stream runs;
- the breach probability stays at or below the threshold while d = E - M > μ⁻ h + z σ √h with
  z = Φ⁻¹(1 - threshold / 2), σ = |x| vol, μ = x v and μ⁻ = max(-μ, 0) (vol the larger of the asset's and its
  fast volatility, v its price velocity): the running minimum of d + μ t + σ W_t over the horizon h is at least
  d - μ⁻ h + σ min W_t, whose probability of reaching 0 is 2 Φ(-(d - μ⁻ h) / (σ √h)). A drift away from MM
  (a short while the price falls) only lowers the probability.

Writing u = max(∓v, 0) h + z vol √h (the asset's "reach" per unit of notional, for a long and a short) and
capping it at `ucap` (`REACH_HEADROOM` times its value at the re-margin, and at least twice its value at zero
velocity), the status and the flag cannot change while |r| < R with

    healthy:      R = (E - I + dust) / (|x| + GROWTH I)
    margin call:  R = min((I - dust - E) / (|x| + GROWTH I), (E - M + dust) / (|x| + GROWTH M))
    flag:         R = (E - M - s |x| ucap) / (|x| + GROWTH M + s |x| ucap),   s = `SAFETY`

and R <= MAX_MOVE. The account is due again when the price leaves [p0 (1 - R), p0 (1 + R)] or the asset's
reach exceeds its cap. Accounts that do not qualify, and those flagged, liquidatable or being liquidated,
are **hot**: re-margined whenever an asset they are exposed to moves, as without the screen. Per cycle the
screen costs O(assets) while every price stays inside every band (the bands' extremes are kept per asset),
and one pass over the screened accounts of an asset when its price leaves them.
"""

from __future__ import annotations

import math

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
#: Head-room on the flag's distance, against rounding in the breach probability: 1%.
SAFETY = 1.01
#: Relative rounding allowed on equity and requirements (they are sums of many terms).
ROUNDING = 1e-12
#: A band's reach cap over the reach at its re-margin: tighter bands, re-margined when the reach grows by 25%.
REACH_HEADROOM = 1.25


def flag_reach(vol: FloatArray, velocity: FloatArray, params: PredictiveParams) -> FloatArray:
    """(A, 2) u = max(∓v, 0) h + z vol √h per asset, for a long (column 0) and a short (1): how far, per unit of
    delta notional, equity must stand above MM for the breach probability to stay at or below
    `params.threshold` (vol (A,) annualised; velocity (A,) per year, NaN read as 0, ignored unless
    `params.use_drift`)."""
    h = params.horizon_seconds / SECONDS_PER_YEAR
    z = float(ndtri(1.0 - params.threshold / 2.0))
    v = np.nan_to_num(velocity, nan=0.0) if params.use_drift else np.zeros_like(vol)
    diffusion = z * vol * math.sqrt(h)
    reach: FloatArray = np.stack([np.maximum(-v, 0.0) * h + diffusion, np.maximum(v, 0.0) * h + diffusion], axis=1)
    return reach


class HealthScreen:
    """Bands of the screened accounts and the hot set (see the module). `asset[k]` is the screened account's
    asset column, -1 when it is not screened (hot, or exposed to nothing)."""

    def __init__(self, n_accounts: int, n_assets: int) -> None:
        self.n_assets = n_assets
        self.asset = np.full(n_accounts, -1, dtype=np.int64)
        self.low = np.zeros(n_accounts)
        self.high = np.zeros(n_accounts)
        self.reach_cap = np.zeros(n_accounts)
        self.side = np.zeros(n_accounts, dtype=np.int64)  # 0 long (or flat), 1 short: the column of the reach
        self.hot = np.ones(n_accounts, dtype=np.bool_)  # nothing is known before the first re-margin
        self._extremes: tuple[FloatArray, FloatArray, FloatArray] | None = None

    def hot_rows(self) -> IndexArray:
        """The hot accounts, ascending."""
        return np.flatnonzero(self.hot).astype(np.int64)

    def screened_rows(self) -> IndexArray:
        """The screened accounts (their figures may date from an earlier cycle), ascending."""
        return np.flatnonzero(self.asset >= 0).astype(np.int64)

    def update(
        self,
        rows: IndexArray,
        screenable: BoolArray,
        asset: IndexArray,
        delta_notional: FloatArray,
        equity: FloatArray,
        im: FloatArray,
        mm: FloatArray,
        healthy: BoolArray,
        calm: BoolArray,
        price: FloatArray,
        reach: FloatArray,
        reach_floor: FloatArray,
        dust: float,
    ) -> None:
        """New bands for `rows` (K,) just re-margined. screenable (K,): the account qualifies (`asset` (K,) its one
        asset, -1 if it is exposed to none); healthy (K,): status healthy (else margin call, when calm); calm (K,):
        neither flagged, liquidatable nor being liquidated; price (A,), reach (A, 2) and reach_floor (A,): now."""
        a = np.where(asset >= 0, asset, 0)
        g = np.abs(delta_notional)
        side = (delta_notional < 0.0).astype(np.int64)
        cap = np.maximum(REACH_HEADROOM * reach[a, side], reach_floor[a])
        slack = ROUNDING * (np.abs(equity) + im + g)
        up = _ratio(equity - im + dust - slack, g + GROWTH * im)  # healthy: before equity falls below IM
        back = _ratio(im - dust - equity - slack, g + GROWTH * im)  # margin call: before equity reaches IM
        down = _ratio(equity - mm + dust - slack, g + GROWTH * mm)  # margin call: before equity falls below MM
        status = np.where(healthy, up, np.minimum(back, down))
        flag = _ratio(equity - mm - SAFETY * g * cap - slack, g + GROWTH * mm + SAFETY * g * cap)
        move = np.minimum(np.minimum(status, flag), MAX_MOVE)
        screened = screenable & calm & ((move > 0.0) | (asset < 0))
        self.asset[rows] = np.where(screened, asset, -1)
        self.hot[rows] = ~screened
        self.low[rows] = price[a] * (1.0 - move)
        self.high[rows] = price[a] * (1.0 + move)
        self.reach_cap[rows] = cap
        self.side[rows] = side
        self._extremes = None

    def due(self, moved: BoolArray, price: FloatArray, reach: FloatArray) -> IndexArray:
        """Screened accounts on a `moved` (A,) asset whose band the price has left or whose reach cap the asset's
        reach (A, 2) has passed, ascending."""
        if self._extremes is None:
            self._extremes = _extremes(self.asset, self.low, self.high, self.reach_cap, self.n_assets)
        low, high, cap = self._extremes
        check = moved & ((price <= low) | (price >= high) | (reach.max(axis=1) > cap))
        if not check.any():
            return np.zeros(0, dtype=np.int64)
        out = np.empty(self.asset.size, dtype=np.int64)
        n = _due(self.asset, self.side, self.low, self.high, self.reach_cap, price, reach, check, out)
        return out[:n]


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """The move a distance allows: numerator / denominator, +inf where the denominator is 0 (no delta and no
    requirement: nothing moves with the price), 0 where it is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(denominator > 0.0, numerator / np.where(denominator > 0.0, denominator, 1.0), np.inf)
    out: FloatArray = np.where(np.isnan(ratio), 0.0, ratio)
    return out


@jit()
def _extremes(
    asset: IndexArray, low: FloatArray, high: FloatArray, cap: FloatArray, n_assets: int
) -> tuple[FloatArray, FloatArray, FloatArray]:  # pragma: no cover - compiled
    """Per asset: the highest lower band, the lowest upper band, the lowest reach cap of its screened accounts."""
    top_low = np.full(n_assets, -np.inf)
    bottom_high = np.full(n_assets, np.inf)
    bottom_cap = np.full(n_assets, np.inf)
    for k in range(asset.size):
        a = asset[k]
        if a >= 0:
            top_low[a] = max(top_low[a], low[k])
            bottom_high[a] = min(bottom_high[a], high[k])
            bottom_cap[a] = min(bottom_cap[a], cap[k])
    return top_low, bottom_high, bottom_cap


@jit()
def _due(
    asset: IndexArray,
    side: IndexArray,
    low: FloatArray,
    high: FloatArray,
    cap: FloatArray,
    price: FloatArray,
    reach: FloatArray,
    check: BoolArray,
    out: IndexArray,
) -> int:  # pragma: no cover - compiled
    """Writes the due accounts of the `check`ed assets to `out`, ascending; returns how many."""
    n = 0
    for k in range(asset.size):
        a = asset[k]
        if a >= 0 and check[a] and (price[a] <= low[k] or price[a] >= high[k] or reach[a, side[k]] > cap[k]):
            out[n] = k
            n += 1
    return n
