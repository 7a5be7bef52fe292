"""Partial liquidation: the smallest close-out that restores equity >= target x IM, then the per-slice caps.

Pure functions over arrays (DESIGN.md item 10; docs/model.md, "Partial liquidation"). For K accounts in
CSR form (`CloseOutBook`) the sizer finds, for every account at once, the smallest point t in [0, 1] on a
close-out path at which

    g(t) = equity - cost(c(t)) - fee x notional(c(t)) - target x IM(q - c(t)) >= 0,

by one vectorised bracketing root finder across the K accounts -- regula falsi with a bisection safeguard
(`_bracket_root`; each iteration calls the caller's margin engine twice, each time on all accounts' remaining
quantities) -- then applies the venue rules of `LiquidationParams` in a fixed order: bankruptcy, per-position
share cap, account notional cap, minimum slice, dust, fee cap.

Conventions.

- Quantities are signed contracts; `close` has the sign of the position and |close| <= |quantity|.
  Closing a long sells (fills at or below mark), closing a short buys (at or above mark).
- Closing at mark changes nothing in equity (a linear position's P&L is realised into collateral, an
  option's premium is paid or received at mark); the only equity effects are the execution cost against
  mark and the liquidation fee: equity_after = equity - cost - fee.
- Execution cost (`closeout_cost`): per account and asset, the net underlying units traded
  d = sum of close x units over that asset's positions (d > 0 sells into the bid, d < 0 buys from the
  ask) priced by `factors.liquidity.delta_cost` on the *current* book thinned by the asset's own
  `stress` (a depth-curve walk, else the square-root law on ADV, else 0); plus, per option position,
  |close x vega| x (vol_spread / 2) / 0.01 x stress: each option series crosses its own vol bid-ask,
  so vega is not netted between positions.
- Fill price per position: mark -/+ (its share of the cost) / |close|. The delta part of an
  (account, asset) cost is shared in proportion to |close x units| of its positions; the vega part is
  the position's own. So sum_p |close_p| x |fill_p - mark_p| = cost exactly; a position not closed
  fills at mark.
- Paths: "proportional" closes c = t x q; "greedy" closes positions in descending `priority` (hedges,
  with negative priority, last; ties in book order), each in full before the next, the crossing one in
  part, t being the share of the account's gross notional sum |q| x notional closed (equal shares when
  that is 0).

The root finder keeps a bracket g(lo) < 0 <= g(hi) (from g(0) < 0, known without a call, and g(1)) and
returns hi once hi - lo <= tolerance: the smallest restoring t to within tolerance when g is non-decreasing on
[0, t*] -- the margin released per unit closed exceeds its cost and fee; under "proportional" it holds when
IM is convex along the path (a positively homogeneous market risk plus the convex liquidity add-on): the cost
being convex, g is then concave. If g is not monotone (closing a position IM relies on as a hedge, an
account-coupled IM such as open-interest concentration) the bracket still holds and the t returned restores,
not necessarily the smallest; `restores` is evaluated on the final quantities in every case.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent.factors.liquidity import VOL_POINT, delta_cost
from solvent.market.depth import AssetLiquidity
from solvent.params import LiquidationParams

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IndexArray = NDArray[np.int64]

#: Requirement callback: (P,) remaining quantities of all K accounts -> (K,) IM.
Requirement = Callable[[FloatArray], FloatArray]

#: At most this many iterations of the root finder (two requirement calls each); the bracket at least halves per
#: iteration on average, so the cap binds only below a width of 2^-63, under any useful tolerance.
MAX_STEPS = 64


def _check(name: str, array: NDArray[np.generic], shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {array[~np.isfinite(array)].flat[0].item()!r}")


def _check_non_negative(name: str, array: FloatArray) -> None:
    if (array < 0.0).any():
        raise ValueError(f"{name} must be >= 0, got {array[array < 0.0].flat[0].item()!r}")


@dataclass(frozen=True, eq=False)
class CloseOutBook:
    """K accounts' positions in CSR form: positions of account k are rows offsets[k]:offsets[k+1].

    offsets (K + 1,) int64, non-decreasing from 0; instrument (P,) int32, the caller's instrument row (kept
    for the caller, not read here); quantity (P,) signed contracts; asset (P,) int32, market column of the
    underlying; units (P,) units of the underlying one contract trades when closed (linear: its unit delta;
    options: 0); vega (P,) USD per vol point per contract (options; 0 for linear); notional (P,) USD
    notional per contract, >= 0; mark (P,) USD per contract the fill deviates from (linear: the contract's
    value at the forward; options: the premium). Every float finite (ValueError names the first offence).
    """

    offsets: IndexArray
    instrument: NDArray[np.int32]
    quantity: FloatArray
    asset: NDArray[np.int32]
    units: FloatArray
    vega: FloatArray
    notional: FloatArray
    mark: FloatArray

    def __post_init__(self) -> None:
        if self.offsets.ndim != 1 or self.offsets.size < 1 or self.offsets[0] != 0:
            first = self.offsets.flat[0].item() if self.offsets.size else None
            raise ValueError(f"offsets must be (K + 1,) starting at 0, got shape {self.offsets.shape}, first {first!r}")
        steps = np.diff(self.offsets)
        if (steps < 0).any():
            raise ValueError(f"offsets must be non-decreasing, got a step of {steps[steps < 0][0].item()!r}")
        shape = (int(self.offsets[-1]),)
        for name in ("instrument", "quantity", "asset", "units", "vega", "notional", "mark"):
            _check(name, getattr(self, name), shape)
        _check_non_negative("notional", self.notional)
        if (self.asset < 0).any():
            raise ValueError(f"asset must be >= 0, got {self.asset[self.asset < 0][0].item()!r}")

    @property
    def n_accounts(self) -> int:
        """K."""
        return int(self.offsets.size - 1)

    def position_account(self) -> IndexArray:
        """(P,) the account row of every position."""
        return np.repeat(np.arange(self.n_accounts, dtype=np.int64), np.diff(self.offsets))


@dataclass(frozen=True, eq=False)
class CloseOutMarket:
    """The book a close-out trades against, per asset (A,).

    liquidity: each asset's depth curves, ADV and vol bid-ask (as `MarketState.liquidity`; empty: none
    for any asset); price: spot, > 0; daily_vol: daily volatility (square-root law), >= 0; stress: >= 1,
    divides the book's cumulative sizes and the ADV and widens the vol bid-ask (1: the book as quoted,
    2: it holds half the depth); half_spread and coefficient: the square-root law's `adv_half_spread`
    and `impact_coefficient` (`LiquidityParams`).
    """

    liquidity: tuple[AssetLiquidity, ...]
    price: FloatArray
    daily_vol: FloatArray
    stress: FloatArray
    half_spread: float = 0.0005
    coefficient: float = 1.0

    def __post_init__(self) -> None:
        n = self.price.shape[0] if self.price.ndim == 1 else -1
        if n < 0:
            raise ValueError(f"price must be (A,), got shape {self.price.shape}")
        if not self.liquidity:
            object.__setattr__(self, "liquidity", tuple(AssetLiquidity() for _ in range(n)))
        if len(self.liquidity) != n:
            raise ValueError(f"liquidity must have one entry per asset ({n}), got {len(self.liquidity)}")
        for name in ("price", "daily_vol", "stress"):
            _check(name, getattr(self, name), (n,))
        if (self.price <= 0.0).any():
            raise ValueError(f"price must be > 0, got {self.price[self.price <= 0.0][0].item()!r}")
        _check_non_negative("daily_vol", self.daily_vol)
        if (self.stress < 1.0).any():
            raise ValueError(f"stress must be >= 1, got {self.stress[self.stress < 1.0][0].item()!r}")
        for name in ("half_spread", "coefficient"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")

    @property
    def n_assets(self) -> int:
        """A."""
        return int(self.price.shape[0])


@dataclass(frozen=True, eq=False)
class CloseOutPlan:
    """One slice per account.

    Per position (P,): close, signed contracts closed (sign of the quantity, |close| <= |quantity|);
    fill_price, USD per contract (mark where nothing is closed). Per account (K,): cost (execution
    against mark), fee, notional (USD closed), fraction (the path point t the sizer reached, before the
    caps: 0 when not needed, 1 when bankrupt or when nothing short of closing everything restores),
    equity_after = equity - cost - fee, im_after (IM of what remains), needed (equity < target x IM
    before), restores (equity_after >= target x im_after), bankrupt (equity - cost of closing everything
    < 0: everything closed, no fee, no caps; the backstop takes over), capped (the caps cut some
    position below what the sizer found restores).
    """

    close: FloatArray
    fill_price: FloatArray
    cost: FloatArray
    fee: FloatArray
    notional: FloatArray
    fraction: FloatArray
    equity_after: FloatArray
    im_after: FloatArray
    needed: BoolArray
    restores: BoolArray
    bankrupt: BoolArray
    capped: BoolArray


# ---------------------------------------------------------------------------------------- execution


def closeout_cost(book: CloseOutBook, close: FloatArray, market: CloseOutMarket) -> tuple[FloatArray, FloatArray]:
    """((K,) execution cost against mark, (P,) fill price) of closing `close` (P,) contracts.

    See the module for the conventions; the loop is over assets only.
    """
    n_acc, n_assets = book.n_accounts, market.n_assets
    if book.asset.size and int(book.asset.max()) >= n_assets:
        raise ValueError(f"asset must be < {n_assets} (the market's assets), got {int(book.asset.max())!r}")
    account = book.position_account()
    key = account * n_assets + book.asset
    traded = close * book.units
    net = np.bincount(key, weights=traded, minlength=n_acc * n_assets).astype(np.float64).reshape(n_acc, n_assets)
    gross = np.bincount(key, weights=np.abs(traded), minlength=n_acc * n_assets)
    delta = np.zeros((n_acc, n_assets))
    vega_rate = np.zeros(n_assets)  # USD per (contract x USD-per-vol-point) closed
    for a in np.unique(book.asset):
        liquidity = market.liquidity[a]
        delta[:, a] = delta_cost(
            net[:, a],
            liquidity,
            float(market.price[a]),
            float(market.daily_vol[a]),
            float(market.stress[a]),
            market.half_spread,
            market.coefficient,
        )
        if math.isfinite(liquidity.vol_spread):
            vega_rate[a] = liquidity.vol_spread / 2.0 / VOL_POINT * float(market.stress[a])
    share = np.divide(np.abs(traded), gross[key], out=np.zeros_like(traded), where=gross[key] > 0.0)
    by_position = delta.reshape(-1)[key] * share + np.abs(close * book.vega) * vega_rate[book.asset]
    cost = np.bincount(account, weights=by_position, minlength=n_acc).astype(np.float64)
    size = np.abs(close)
    slip = np.divide(by_position, size, out=np.zeros_like(size), where=size > 0.0)
    fill: FloatArray = book.mark - np.sign(close) * slip
    return cost, fill


# --------------------------------------------------------------------------------------------- paths


@dataclass(frozen=True, eq=False)
class _Greedy:
    """Each position's slot [start, start + width) of the account's t in [0, 1] (greedy path)."""

    start: FloatArray
    width: FloatArray


def _greedy_slots(book: CloseOutBook, priority: FloatArray) -> _Greedy:
    """Slots in descending priority within each account; width = the position's share of gross notional."""
    account = book.position_account()
    weight = np.abs(book.quantity) * book.notional
    total = np.bincount(account, weights=weight, minlength=book.n_accounts)
    count = np.maximum(np.diff(book.offsets), 1).astype(np.float64)
    share = np.where(total[account] > 0.0, weight / np.where(total > 0.0, total, 1.0)[account], 1.0 / count[account])
    order = np.lexsort((-priority, account))  # by account, then priority descending; stable for ties
    ends = np.cumsum(share[order])
    first = book.offsets[:-1]
    base = np.concatenate(([0.0], ends))[first]  # the running total before each account
    start = np.empty_like(share)
    start[order] = ends - share[order] - base[account[order]]
    return _Greedy(start=np.maximum(start, 0.0), width=share)


def _closed_fraction(t: FloatArray, account: IndexArray, slots: _Greedy | None) -> FloatArray:
    """(P,) the share of each position closed at path point t (K,): t itself, or its greedy slot's share."""
    tp = t[account]
    if slots is None:
        return tp
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # zero or subnormal widths: `step` below
        partial = np.clip((tp - slots.start) / slots.width, 0.0, 1.0)
    step = np.where((tp > 0.0) & (tp >= slots.start), 1.0, 0.0)  # a zero-width slot closes when reached
    fraction = np.where(slots.width > 0.0, partial, step)
    return np.where(tp >= 1.0, 1.0, fraction)


# ------------------------------------------------------------------------------------------ the sizer


def _requirement(requirement: Requirement, remaining: FloatArray, n_accounts: int) -> FloatArray:
    """Call the caller's engine on a copy (it cannot alter our arrays) and check what comes back."""
    im = np.asarray(requirement(remaining.copy()), dtype=np.float64)
    _check("requirement(q)", im, (n_accounts,))
    _check_non_negative("requirement(q)", im)
    return im


def _secant_root(t0: FloatArray, g0: FloatArray, t1: FloatArray, g1: FloatArray) -> FloatArray:
    """(K,) where the line through (t0, g0) and (t1, g1) crosses 0: inf or NaN where it is flat."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        root: FloatArray = t0 - g0 * ((t1 - t0) / (g1 - g0))
    return root


def _narrow(
    t: FloatArray, g: FloatArray, open_: BoolArray, lo: FloatArray, hi: FloatArray, g_lo: FloatArray, g_hi: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, BoolArray]:
    """Each open account's t replaces the bracket end of its sign: (lo, hi, g_lo, g_hi, True where t became hi)."""
    up = open_ & (g >= 0.0)
    down = open_ & ~up
    return np.where(down, t, lo), np.where(up, t, hi), np.where(down, g, g_lo), np.where(up, g, g_hi), up


def _bracket_root(
    gap: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
    active: BoolArray,
    full: FloatArray,
    g_lo: FloatArray,
    g_hi: FloatArray,
    tolerance: float,
) -> FloatArray:
    """(K,) for every active account the hi of a bracket lo < hi with g(lo) < 0 <= g(hi) and hi - lo <= tolerance
    (`full` elsewhere), from g(0) = g_lo < 0 <= g(1) = g_hi; g = gap(t)[0], evaluated on all K accounts at once.

    Regula falsi with a bisection safeguard (Press et al., Numerical Recipes, 3rd ed., 9.2-9.3; the safeguard
    as in Brent, Algorithms for Minimization without Derivatives, 1973, ch. 4), vectorised: each iteration
    makes two calls of `gap`, every account still open taking its own point (the others pass their hi, or
    `full` when not active, so the calls keep their shape).

    1. x: the secant root of the bracket ends (regula falsi) -- or the midpoint where the previous iteration
       did not at least halve the account's bracket -- kept tolerance / 4 inside the bracket.
    2. The probe: where x was the midpoint, the midpoint of the new bracket; elsewhere the secant root of x and
       the bracket end x replaced (a secant step, crossing the root where regula falsi keeps one end), but,
       where that lands within 0.999 x tolerance of x, the point 0.999 x tolerance across x from the end it
       replaced -- so that when g is linear in t the bracket closes in one iteration (2 calls); the midpoint
       where the secant is flat or leaves the bracket.

    Each evaluation replaces the bracket end of its sign, so g(lo) < 0 <= g(hi) holds throughout whatever the
    shape of g. An iteration that does not halve the bracket is followed by one that quarters it, so the
    bracket at least halves per iteration on average: at worst twice the calls of bisection.
    """
    n_acc = full.shape[0]
    lo, hi = np.zeros(n_acc), np.ones(n_acc)
    previous = np.full(n_acc, np.inf)  # each account's bracket width when the previous iteration began
    step = 0.999 * tolerance
    for _ in range(MAX_STEPS):
        width = hi - lo
        open_ = active & (width > tolerance)
        if not open_.any():
            break
        bisect = width > 0.5 * previous
        previous = width
        falsi = _secant_root(lo, g_lo, hi, g_hi)  # g_lo < 0 <= g_hi: in (lo, hi] unless it overflows
        x = np.where(bisect | ~np.isfinite(falsi), lo + 0.5 * width, falsi)
        inset = np.minimum(0.25 * tolerance, 0.5 * width)
        x = np.clip(x, lo + inset, hi - inset)
        g, _ = gap(np.where(open_, x, np.where(active, hi, full)))
        replaced_t, replaced_g = np.where(g >= 0.0, hi, lo), np.where(g >= 0.0, g_hi, g_lo)  # the end x replaces
        lo, hi, g_lo, g_hi, up = _narrow(x, g, open_, lo, hi, g_lo, g_hi)
        open_ = open_ & (hi - lo > tolerance)
        if not open_.any():
            break
        guess = _secant_root(x, g, replaced_t, replaced_g)
        middle = lo + 0.5 * (hi - lo)
        probe = np.where((guess > lo) & (guess < hi), guess, middle)
        probe = np.where(np.abs(guess - x) <= step, np.where(up, x - step, x + step), probe)
        probe = np.clip(np.where(bisect, middle, probe), lo, hi)
        g, _ = gap(np.where(open_, probe, np.where(active, hi, full)))
        lo, hi, g_lo, g_hi, _ = _narrow(probe, g, open_, lo, hi, g_lo, g_hi)
    return np.where(active, hi, full)


def plan_closeout(
    book: CloseOutBook,
    equity: FloatArray,
    requirement: Requirement,
    market: CloseOutMarket,
    rules: LiquidationParams,
    priority: FloatArray | None = None,
    tolerance: float = 1e-9,
) -> CloseOutPlan:
    """Size one liquidation slice per account (see the module and docs/model.md, "Partial liquidation").

    equity (K,) USD before the slice; requirement(q) -> (K,) IM of the remaining quantities q (P,) of all
    K accounts (called 3 times plus twice per iteration of the root finder, each time on all accounts: 5 times
    when g is linear in t, a few more when it curves, at most 3 + 2 x MAX_STEPS); rules.method picks the path
    ("greedy" needs `priority` (P,), each position's contribution to market risk, hedges negative);
    tolerance: the root finder stops when hi - lo <= tolerance in t for every account.

    Rules after sizing, in order: (1) bankrupt (equity - cost of closing everything < 0): close
    everything, fee 0, no caps; otherwise (2) |close| <= max_share_per_slice x |q| per position;
    (3) the account's notional closed <= max_notional_per_slice (all its closes scaled by one factor);
    (4) a position being closed closes at least min_slice_notional of notional, or all of it; (5) a position
    whose remainder would be worth less than min_position_notional closes in full; (6) fee = rules.fee x
    notional closed, at most max(equity - cost, 0). Accounts with equity >= target x IM get no close.
    """
    n_acc = book.n_accounts
    _check("equity", equity, (n_acc,))
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}")
    slots: _Greedy | None = None
    if rules.method == "greedy":
        if priority is None:
            raise ValueError("priority: required by the greedy method (each position's contribution to risk)")
        _check("priority", priority, book.quantity.shape)
        slots = _greedy_slots(book, priority)
    account = book.position_account()
    quantity = book.quantity

    def gap(t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(g(t), cost(t)) for every account: equity - cost - fee - target x IM after closing c(t)."""
        close = _closed_fraction(t, account, slots) * quantity
        cost, _ = closeout_cost(book, close, market)
        fee = rules.fee * np.bincount(account, weights=np.abs(close) * book.notional, minlength=n_acc)
        im = _requirement(requirement, quantity - close, n_acc)
        return equity - cost - fee - rules.target * im, cost

    im_before = _requirement(requirement, quantity, n_acc)
    needed = ~(equity >= rules.target * im_before)
    full = np.where(needed, 1.0, 0.0)
    g_full, cost_full = gap(full)
    bankrupt = needed & (equity - cost_full < 0.0)
    active = needed & ~bankrupt & (g_full >= 0.0)
    # g(0) needs no call: closing nothing costs nothing, so g(0) = equity - target x IM before (< 0 when needed).
    g_none = equity - rules.target * im_before
    fraction = _bracket_root(gap, active, full, g_none, g_full, tolerance)

    sized = _closed_fraction(fraction, account, slots) * np.abs(quantity)
    size = _apply_caps(book, sized, account, needed & ~bankrupt, rules)
    size = np.where(bankrupt[account], np.abs(quantity), size)
    close = np.sign(quantity) * np.minimum(size, np.abs(quantity)) + 0.0  # + 0.0: no -0.0 for a short not closed
    cost, fill = closeout_cost(book, close, market)
    notional = np.bincount(account, weights=np.abs(close) * book.notional, minlength=n_acc).astype(np.float64)
    fee = np.where(bankrupt, 0.0, np.minimum(rules.fee * notional, np.maximum(equity - cost, 0.0)))
    im_after = _requirement(requirement, quantity - close, n_acc)
    equity_after = equity - cost - fee
    cut = np.bincount(account, weights=(size < sized).astype(np.float64), minlength=n_acc) > 0.0
    return CloseOutPlan(
        close=close,
        fill_price=fill,
        cost=cost,
        fee=fee,
        notional=notional,
        fraction=fraction,
        equity_after=equity_after,
        im_after=im_after,
        needed=needed,
        restores=equity_after >= rules.target * im_after,
        bankrupt=bankrupt,
        capped=needed & ~bankrupt & cut,
    )


def _apply_caps(
    book: CloseOutBook, sized: FloatArray, account: IndexArray, apply: BoolArray, rules: LiquidationParams
) -> FloatArray:
    """(P,) contracts closed (unsigned) after rules (2) to (5), for the accounts in `apply`; others as sized."""
    held = np.abs(book.quantity)
    notional = book.notional
    size = np.minimum(sized, rules.max_share_per_slice * held)  # (2) share of each position
    if rules.max_notional_per_slice is not None:  # (3) one factor per account
        total = np.bincount(account, weights=size * notional, minlength=book.n_accounts)
        limit = rules.max_notional_per_slice
        factor = np.divide(limit, total, out=np.ones_like(total), where=total > limit)
        size = size * factor[account]
    closing = size > 0.0
    with np.errstate(over="ignore"):  # a subnormal notional: the floor is inf, then all of the position
        floor = np.divide(rules.min_slice_notional, notional, out=np.full_like(notional, np.inf), where=notional > 0.0)
    size = np.where(closing, np.maximum(size, np.minimum(floor, held)), size)  # (4) minimum slice
    dust = closing & ((held - size) * notional < rules.min_position_notional)
    size = np.where(dust, held, size)  # (5) no dust left behind
    return np.where(apply[account], size, sized)
