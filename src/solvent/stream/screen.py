"""The health screen: the accounts a price move cannot have changed, so a cycle re-margins only the others.

Without it the streaming engine re-margins every account exposed to an asset that moved: at one-second
cycles over 100,000 accounts that is the whole book every second. With it (`StreamEngine(screen=True)`) an
account is re-margined only when the move since its last re-margin could have changed its status (healthy,
margin call, liquidatable), its liquidation (which stops at target x IM) or its early flag; the events are
the same as without it, and its figures (IM, MM, equity, breach probability) are those of its last re-margin
until then. An account due a liquidation slice is margined afresh by the liquidation pass itself.

An account is **screened** when its risk is linear in one asset: every position it holds linear (perpetual,
future, spot) on that asset and collateral in the settlement currency only (and, for an asset priced from oracle
sources, the uncertainty charged as the `oracle` buffer, not by widening the scenarios). After a re-margin at
price p0 with equity E, IM I, MM M and delta notional x (g = |x|), for a relative move r = p / p0 - 1:

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

Each threshold T the account's standing keeps equity above (or below) is a constraint with room D = E - T
(or T - E) now, T moving by at most a rate γ x |r| (γ = GROWTH T for IM and MM, plus the reach terms of the
flag's). A move in the account's favour raises equity by between ℓ₀ |r| and g |r| (ℓ₀ = g, or 0 when a remote
gain's haircut may flatten it), one against it lowers equity as much, so the screen solves, separately for
each direction, the largest |r| keeping every constraint:

    equity above T:  in favour  D / (γ - ℓ₀)  (unbounded when ℓ₀ >= γ),  against  D / (g + γ)
    equity below T:  in favour  D / (g + γ),                           against  D / (γ - ℓ₀)  (likewise)

over the constraints of each standing:

    healthy:         above I - dust (M - dust without margin calls)      (γ = GROWTH I, or GROWTH M)
    margin call:     below I - dust, above M - dust
    liquidatable:    below M - dust
    in liquidation:  also below target I - dust
    not flagged:     above M + s g c,          γ = GROWTH M + s g c;     c: cap on the adverse reach
    flagged:         below M + g (ℓ - c),      γ = GROWTH M + g c + g ℓ; ℓ = z vol₀ √h / s, c: cap on the
                     favourable reach; and above M (the flag needs E >= M)
    flag unwatched:  nothing (an engine publishing first flags only, once the account has been flagged)

each room less a relative rounding allowance, and each move <= MAX_MOVE; s = `SAFETY`.

**An asset priced from oracle sources** moves three things at each quote: the price, its uncertainty U and its
stable price S (market/stable_price.py). With δ the account's net units of the asset (fixed: its positions are
linear) and t its risk tier, IM = t (X(p) + c |δ| U) + |δ| max(±(p - S), 0), X the other terms (bounded as above)
and c the buffer multiplier: U moves IM by exactly k |ΔU|, k = t c |δ|, and MM (a fraction of the part before the
stable term, or the min / max of terms each moving with U at most as fast) by at most k |ΔU|; the stable term
moves by at most |δ| (|Δp| + |ΔS|) = g |r| + |δ| |ΔS| and is in IM only (MM, equity and the breach probability
never see S). So a constraint on IM has price rate γ + g, uncertainty rate k and stable-price rate |δ| (each x
target for the liquidation target), one on MM (the flag's too) uncertainty rate k. Each constraint's room is shared
between the moves it depends on (`PRICE_SHARE`, `UNCERTAINTY_SHARE`, `STABLE_SHARE`, normalised): the price band
comes from the price's share as above, and U and S get bands U0 ± u, S0 ± v, u the least of the uncertainty shares
over k, v of the stable shares over |δ| (times target where it applies). Inside all three bands no constraint
can have used more than its room. Under the charge "scan" (U widens every scenario) such accounts stay hot. The caps are
`REACH_HEADROOM` times the reach at the re-margin (the favourable one at least a tenth of z vol₀ √h). A long's
favourable move is up, a short's down: the account is due again when the price leaves [p0 (1 - R_down),
p0 (1 + R_up)] or the asset's reach passes its cap. A band is one-sided where it matters: a healthy long
moving up gains equity faster than its IM can grow. Accounts that do not qualify, those with no room, and
flagged ones when an early flag deleverages, are **hot**: re-margined whenever an asset they are exposed to
moves, as without the screen. The bands wait in per-asset heaps (the highest lower band, the lowest upper
band of the price, the uncertainty and the stable price, and the lowest reach cap on top), so a cycle costs
O(assets) while every value stays inside every band and O(log N) per account found due, whatever the number of
accounts. An account holding collateral in another asset than the settlement currency (one at most, valued at its
price: collateral mode "none") is screened on its positions' asset and re-margined whenever the collateral's price
moves (`HealthScreen.holding`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from solvent._numba import jit
from solvent.engine.book import HOME_VENUE
from solvent.liquidation.predictive import SECONDS_PER_YEAR
from solvent.params import PredictiveParams
from solvent.stream.duequeue import QUEUES, compact, enqueue, find_due

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
#: How a constraint's room is shared between the moves it depends on (normalised over those it does): the price
#: always, the oracle uncertainty and the stable price where oracle sources price the asset.
PRICE_SHARE, UNCERTAINTY_SHARE, STABLE_SHARE = 2.0, 1.0, 1.0

#: The columns of `flag_reach`: adverse for a long, for a short; favourable for a long, for a short.
ADVERSE, FAVOURABLE = 0, 2


def flag_reach(vol: FloatArray, velocity: FloatArray, params: PredictiveParams) -> FloatArray:
    """(A, 4) per asset and unit of delta notional: the adverse reach μ⁻ h / g + z vol √h of a long and of a
    short (columns 0, 1), and the favourable reach μ⁺ h / g of a long and of a short (2, 3); vol (A,)
    annualised, velocity (A,) per year (NaN read as 0; ignored unless `params.use_drift`)."""
    h = params.horizon_seconds / SECONDS_PER_YEAR
    reach = np.empty((vol.shape[0], 4))
    _flag_reach(
        np.asarray(vol, dtype=np.float64),
        np.asarray(velocity, dtype=np.float64),
        h,
        _threshold_z(params.threshold),
        math.sqrt(h),
        params.use_drift,
        reach,
    )
    return reach


@jit()
def _flag_reach(
    vol: FloatArray, velocity: FloatArray, h: float, z: float, root_h: float, use_drift: bool, reach: FloatArray
) -> None:  # pragma: no cover - compiled
    """`flag_reach` into `reach` (A, 4), each asset in one pass (the diffusion reach as `diffusion_reach`)."""
    for a in range(vol.shape[0]):
        diffusion = z * vol[a] * root_h
        rising = falling = 0.0
        if use_drift:
            v = 0.0 if math.isnan(velocity[a]) else velocity[a]
            rising = v * h if v > 0.0 else 0.0  # in a long's favour
            falling = -v * h if v < 0.0 else 0.0  # in a short's favour
        reach[a, 2] = rising
        reach[a, 3] = falling
        reach[a, 0] = falling + diffusion
        reach[a, 1] = rising + diffusion


def diffusion_reach(vol: FloatArray, params: PredictiveParams) -> FloatArray:
    """(A,) z vol √h: the distance to MM, per unit of delta notional, at which a driftless account's breach
    probability is the threshold (2 Φ(-z) = threshold)."""
    reach: FloatArray = _threshold_z(params.threshold) * vol * math.sqrt(params.horizon_seconds / SECONDS_PER_YEAR)
    return reach


@functools.lru_cache(maxsize=8)
def _threshold_z(threshold: float) -> float:
    """z = Φ⁻¹(1 - threshold / 2)."""
    return float(ndtri(1.0 - threshold / 2.0))


class HealthScreen:
    """Bands of the screened accounts and the hot set (see the module). `asset[k]` is the screened account's
    asset column, -1 when it is not screened (hot, or holding no position)."""

    def __init__(self, n_accounts: int, n_assets: int) -> None:
        self.n_assets = n_assets
        self.asset = np.full(n_accounts, -1, dtype=np.int64)
        self.low = np.zeros(n_accounts)
        self.high = np.zeros(n_accounts)
        # Bands of the oracle uncertainty and of the stable price ([-inf, inf] where they move nothing).
        self.oracle_low = np.full(n_accounts, -np.inf)
        self.oracle_high = np.full(n_accounts, np.inf)
        self.stable_low = np.full(n_accounts, -np.inf)
        self.stable_high = np.full(n_accounts, np.inf)
        self.column = np.zeros(n_accounts, dtype=np.int64)  # which reach of `flag_reach` the cap bounds
        self.cap = np.zeros(n_accounts)
        self.hot = np.ones(n_accounts, dtype=np.bool_)  # nothing is known before the first re-margin
        # The market column of the one collateral asset other than the settlement currency an account holds (-1:
        # none): a move of its price re-margins the account (`holding`).
        self.collateral = np.full(n_accounts, -1, dtype=np.int64)
        # The due queues: per asset and band kind a min-heap of -low (the highest lower band on top) and one of
        # high, and per reach column of cap. An entry is (key, row, stamp); it is live while the row's stamp is
        # unchanged (a new band, or the row found due, bumps the stamp), and the stale ones are dropped when they
        # surface or compacted.
        self.stamp = np.zeros(n_accounts, dtype=np.int64)
        n_heaps = QUEUES * n_assets
        capacity = 2 * (n_accounts // max(n_assets, 1)) + 64
        self.keys = np.empty((n_heaps, capacity))
        self.rows = np.empty((n_heaps, capacity), dtype=np.int64)
        self.stamps = np.empty((n_heaps, capacity), dtype=np.int64)
        self.size = np.zeros(n_heaps, dtype=np.int64)

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
            holdings.venue,
            holdings.instrument_asset,
            holdings.linear,
            holdings.excluded,
            holdings.collateral,
            market.sourced,
            figures.delta,
            market.price,
            market.uncertainty,
            market.stable,
            figures.tier,
            figures.oracle_buffer,
            figures.scan,
            figures.equity,
            figures.im,
            figures.mm,
            figures.status,
            figures.flagged,
            figures.in_liquidation,
            figures.watched,
            market.reach,
            market.diffusion,
            figures.dust,
            figures.target,
            figures.deleverage,
            figures.calls,
            self.asset,
            self.low,
            self.high,
            self.oracle_low,
            self.oracle_high,
            self.stable_low,
            self.stable_high,
            self.column,
            self.cap,
            self.hot,
        )
        self.collateral[rows] = holdings.collateral
        self.queue(rows)

    def holding(self, asset: int) -> IndexArray:
        """The screened accounts whose collateral (other than the settlement currency) is `asset`, ascending: a
        move of its price changes their equity at once, so they are due whenever it moves."""
        return np.flatnonzero((self.collateral == asset) & (self.asset >= 0)).astype(np.int64)

    def queue(self, rows: IndexArray) -> None:
        """Queue the bands just written for `rows` (their earlier entries go stale; hot rows are not queued)."""
        self._reserve(rows.size)
        enqueue(rows, self.asset, self._bounds(), self.column, self.cap, self.stamp, *self._queues())

    def _bounds(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """The lower and upper bands of each kind, in the order of their queues (price, uncertainty, stable price)."""
        return self.low, self.high, self.oracle_low, self.oracle_high, self.stable_low, self.stable_high

    def _queues(self) -> tuple[FloatArray, IndexArray, IndexArray, IndexArray]:
        return self.keys, self.rows, self.stamps, self.size

    def _reserve(self, count: int) -> None:
        """Room for `count` more entries in every queue: drop the stale entries, then grow if that is not enough."""
        if int(self.size.max(initial=0)) + count <= self.keys.shape[1]:
            return
        compact(self.stamp, *self._queues())
        needed = int(self.size.max(initial=0)) + count
        if needed <= self.keys.shape[1] // 2:
            return
        n_heaps, width = self.keys.shape
        capacity = max(2 * width, 2 * needed)
        for name, dtype in (("keys", np.float64), ("rows", np.int64), ("stamps", np.int64)):
            grown = np.empty((n_heaps, capacity), dtype=dtype)
            grown[:, :width] = getattr(self, name)
            setattr(self, name, grown)

    def due(
        self,
        moved: BoolArray,
        price: FloatArray,
        reach: FloatArray,
        uncertainty: FloatArray | None = None,
        stable: FloatArray | None = None,
    ) -> IndexArray:
        """Screened accounts on a `moved` (A,) asset whose band the price, the oracle uncertainty or the stable
        price (A,) has left (None: the asset has none, nothing to check), or whose reach cap the asset's reach
        (A, 4) has passed, ascending. They leave the queues: the caller re-margins them (`update`)."""
        out = np.empty(self.asset.size, dtype=np.int64)
        values = (
            np.ascontiguousarray(price, dtype=np.float64),
            np.zeros(price.shape) if uncertainty is None else np.ascontiguousarray(uncertainty, dtype=np.float64),
            np.ascontiguousarray(price if stable is None or stable.size == 0 else stable, dtype=np.float64),
        )
        n = find_due(moved, values, reach, self.asset, self.stamp, out, *self._queues())
        return np.sort(out[:n])


@dataclass(frozen=True, eq=False)
class Holdings:
    """What the re-margined accounts hold, read by the band kernel: the store's slot layout (start, count per
    account (N,); instrument, quantity per slot), each instrument's asset column and linearity, `collateral`
    (K,): the market column of the one collateral asset other than the settlement currency each holds (-1: none;
    its value is then fixed while its own price is, and the account is screened on its positions' asset unless
    that is the same asset), and `excluded`
    (K,): the account cannot be screened whatever it holds (collateral other than the settlement currency, or
    a margin model whose requirement may grow faster than `GROWTH`)."""

    start: IndexArray
    count: IndexArray
    instrument: NDArray[np.int32]
    quantity: FloatArray
    venue: NDArray[np.int32]
    instrument_asset: IndexArray
    linear: BoolArray
    excluded: BoolArray
    collateral: IndexArray


@dataclass(frozen=True, eq=False, kw_only=True)
class Standing:
    """Where the re-margined accounts (K,) stand: delta (K, A) in units of each asset, equity, IM, MM, status
    (0 healthy, 1 margin call, 2 liquidatable), flagged, in liquidation, whether their early flag is watched
    (`watched`: an engine publishing only first flags stops watching it once raised), the risk tier (`tier`,
    1 where none); and the rules: dust (USD), the liquidation target, whether an early flag deleverages, whether
    the status has a margin call (`calls`: without one a healthy account stays healthy down to MM), the `oracle`
    buffer's multiplier c (`oracle_buffer`) and whether the uncertainty widens the scenarios instead (`scan`)."""

    delta: FloatArray
    equity: FloatArray
    im: FloatArray
    mm: FloatArray
    status: NDArray[np.int8]
    flagged: BoolArray
    in_liquidation: BoolArray
    watched: BoolArray
    tier: FloatArray
    dust: float
    target: float
    deleverage: bool
    calls: bool = True
    oracle_buffer: float = 0.0
    scan: bool = False


@dataclass(frozen=True, eq=False)
class Reach:
    """The market now: price (A,), reach (A, 4) (`flag_reach`), the epoch's diffusion reach (A,)
    (`diffusion_reach` of the snapshot's vols), which assets oracle sources price (A,), and their oracle
    uncertainty and stable price (A,; the price itself where there is none)."""

    price: FloatArray
    reach: FloatArray
    diffusion: FloatArray
    sourced: BoolArray
    uncertainty: FloatArray
    stable: FloatArray


@jit()
def _room(slack: float, rate: float) -> float:  # pragma: no cover - compiled
    """The move a constraint allows: it holds by `slack` now and its slack changes by at least `rate` per unit of
    |r|; +inf when it cannot shrink (no room at all when it does not hold now)."""
    if rate < 0.0:
        return slack / -rate
    return math.inf if slack > 0.0 else slack


@jit()
def _tighten(
    favour: float, against: float, room: float, growth: float, above: bool, g: float, least: float
) -> tuple[float, float]:  # pragma: no cover - compiled
    """The moves (in the account's favour, against it) still allowed once equity must stay above (`above`) or
    below a threshold it clears by `room`, the threshold moving by at most `growth` per unit of |r|: a move in
    the account's favour raises equity by between `least` and g per unit, one against it lowers it as much."""
    if above:
        return min(favour, _room(room, least - growth)), min(against, _room(room, -g - growth))
    return min(favour, _room(room, -g - growth)), min(against, _room(room, least - growth))


@jit()
def _constrain(
    moves: tuple[float, float, float, float],
    room: float,
    growth: float,
    above: bool,
    g: float,
    least: float,
    u_rate: float,
    s_rate: float,
) -> tuple[float, float, float, float]:  # pragma: no cover - compiled
    """`moves` (in the account's favour, against it, of the uncertainty, of the stable price) tightened by one
    constraint clearing its threshold by `room`: the threshold moves by at most `growth` per unit of |r|, `u_rate`
    per unit of uncertainty and `s_rate` per unit of stable price (0: it does not move with them). The room is
    shared between the moves it depends on (module docstring); all of it goes to the price where that is all."""
    favour, against, u_room, s_room = moves
    total = PRICE_SHARE + (UNCERTAINTY_SHARE if u_rate > 0.0 else 0.0) + (STABLE_SHARE if s_rate > 0.0 else 0.0)
    share = room if total == PRICE_SHARE else room * (PRICE_SHARE / total)
    favour, against = _tighten(favour, against, share, growth, above, g, least)
    if u_rate > 0.0:
        u_room = min(u_room, room * (UNCERTAINTY_SHARE / total) / u_rate)
    if s_rate > 0.0:
        s_room = min(s_room, room * (STABLE_SHARE / total) / s_rate)
    return favour, against, u_room, s_room


@jit()
def _bands(
    rows: IndexArray,
    start: IndexArray,
    count: IndexArray,
    instrument: NDArray[np.int32],
    quantity: FloatArray,
    venue: NDArray[np.int32],
    instrument_asset: IndexArray,
    linear: BoolArray,
    excluded: BoolArray,
    collateral: IndexArray,
    sourced: BoolArray,
    delta: FloatArray,
    price: FloatArray,
    uncertainty: FloatArray,
    stable: FloatArray,
    tier: FloatArray,
    oracle_buffer: float,
    scan: bool,
    equity: FloatArray,
    im: FloatArray,
    mm: FloatArray,
    status: NDArray[np.int8],
    flagged: BoolArray,
    in_liquidation: BoolArray,
    watched: BoolArray,
    reach: FloatArray,
    diffusion: FloatArray,
    dust: float,
    target: float,
    deleverage: bool,
    calls: bool,
    out_asset: IndexArray,
    out_low: FloatArray,
    out_high: FloatArray,
    out_oracle_low: FloatArray,
    out_oracle_high: FloatArray,
    out_stable_low: FloatArray,
    out_stable_high: FloatArray,
    out_column: IndexArray,
    out_cap: FloatArray,
    out_hot: BoolArray,
) -> None:  # pragma: no cover - compiled
    """Writes each row's bands (see the module) into the screen's (N,) arrays: for each threshold its status
    keeps equity above or below, how far the price may move in the account's favour and against it, and the
    uncertainty and the stable price either way (`_constrain`)."""
    for k in range(rows.size):
        row = rows[k]
        a = -1
        ok = not excluded[k]
        home = True
        for s in range(start[row], start[row] + count[row]):
            if not ok:
                break
            if quantity[s] == 0.0:
                continue
            i = instrument[s]
            if not linear[i] or (a >= 0 and instrument_asset[i] != a):
                ok = False
            a = instrument_asset[i]
            home = home and venue[s] == HOME_VENUE
        if ok and a >= 0 and collateral[k] == a:
            ok = False  # collateral in the positions' own asset: equity is not the positions' delta alone
        if ok and a >= 0 and sourced[a] and scan:
            ok = False  # the uncertainty widens every scenario: no bound here
        out_asset[row] = -1
        out_hot[row] = True
        if not ok:
            continue
        if a < 0:  # holding no position: no price moves it, unless it holds collateral other than USD
            out_hot[row] = collateral[k] >= 0
            continue
        e, i_m, m_m = equity[k], im[k], mm[k]
        x = delta[k, a] * price[a]
        g = abs(x)
        least = g if home else 0.0  # a haircut gain (another venue's) may rise or fall slower than g
        side = 1 if x < 0.0 else 0
        slack = ROUNDING * (abs(e) + i_m + g)
        # Oracle sources: IM and MM move with the uncertainty at k per unit, IM with the stable price at |δ| per
        # unit and, through its gap to the price, at g more per unit of r (the module docstring).
        k_u = tier[k] * oracle_buffer * abs(delta[k, a]) if sourced[a] else 0.0
        k_s = abs(delta[k, a]) if sourced[a] else 0.0
        g_s = g if sourced[a] else 0.0
        # The largest moves in the account's favour and against it, of the uncertainty and of the stable price.
        moves = (MAX_MOVE, MAX_MOVE, math.inf, math.inf)
        if status[k] == 0:
            if calls:
                growth = GROWTH * i_m + g_s
                moves = _constrain(moves, e - i_m + dust - slack, growth, True, g, least, k_u, k_s)
            else:  # without margin calls a healthy account stays so down to MM
                moves = _constrain(moves, e - m_m + dust - slack, GROWTH * m_m, True, g, least, k_u, 0.0)
        elif status[k] == 1:
            moves = _constrain(moves, i_m - dust - e - slack, GROWTH * i_m + g_s, False, g, least, k_u, k_s)
            moves = _constrain(moves, e - m_m + dust - slack, GROWTH * m_m, True, g, least, k_u, 0.0)
        else:
            moves = _constrain(moves, m_m - dust - e - slack, GROWTH * m_m, False, g, least, k_u, 0.0)
        column = ADVERSE + side
        cap = math.inf
        if in_liquidation[k]:  # never flagged while in liquidation, which stops at target x IM
            room = target * i_m - dust - e - slack
            growth = GROWTH * target * i_m + target * g_s
            moves = _constrain(moves, room, growth, False, g, least, target * k_u, target * k_s)
        elif not watched[k]:
            cap = math.inf  # a flag raised before, not published again: no reach to watch
        elif flagged[k]:
            if deleverage:
                continue  # a flag deleverages: a liquidation candidate every cycle
            column = FAVOURABLE + side
            cap = max(REACH_HEADROOM * reach[a, column], 0.1 * diffusion[a])
            floor = diffusion[a] / SAFETY
            room = g * floor - g * cap - (e - m_m) - slack
            growth = GROWTH * m_m + g * cap + g * floor
            moves = _constrain(moves, room, growth, False, g, least, k_u, 0.0)
            moves = _constrain(moves, e - m_m - slack, GROWTH * m_m, True, g, least, k_u, 0.0)
        else:
            cap = REACH_HEADROOM * reach[a, column]
            room = e - m_m - SAFETY * g * cap - slack
            moves = _constrain(moves, room, GROWTH * m_m + SAFETY * g * cap, True, g, least, k_u, 0.0)
        favour, against, u_room, s_room = moves
        if not (favour > 0.0 and against > 0.0 and u_room > 0.0 and s_room > 0.0):
            continue  # no room: hot
        down, up = (against, favour) if side == 0 else (favour, against)
        out_asset[row] = a
        out_hot[row] = False
        out_low[row] = price[a] * (1.0 - down)
        out_high[row] = price[a] * (1.0 + up)
        out_oracle_low[row] = uncertainty[a] - u_room
        out_oracle_high[row] = uncertainty[a] + u_room
        out_stable_low[row] = stable[a] - s_room
        out_stable_high[row] = stable[a] + s_room
        out_column[row] = column
        out_cap[row] = cap
