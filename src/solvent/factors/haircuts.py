"""Dynamic collateral haircuts, and collateral as spot deltas for the integrated mode.

Pure functions over arrays, vectorised over collateral rows (one row per account and asset held);
the only Python loop is over the few collateral assets. `collateral_haircuts` is the fused form the
engine runs (per-asset pieces in numpy, then one compiled pass over the rows, parallel over accounts);
`collateral_haircuts_numpy` (over `haircut_rates`) is its plain numpy twin, and the tests hold the two
together. Formulas, defaults and sources are in
docs/model.md ("Collateral"). For a positive balance of q units of asset a at price P:

    h_vol   = 1 - exp(-z sigma_a sqrt(h))        z = Phi^-1(confidence), h = mpor_days / days_per_year
                                                 (the fall of a lognormal price at its z-quantile; in [0, 1))
    h_mkt   = 0 for USD; `depeg` for a listed stablecoin; h_vol otherwise
    m       = wrong_way x max(Delta_a, 0)          Delta_a the account's net delta of a from its positions
    h_book  = (C(m + q) - C(m)) / (q P)          C the liquidity add-on's close-out cost of selling a size
                                                 (book walk into the stressed bid, else square-root law):
                                                 the cost q adds on top of the long delta closed with it
    h_raw   = h_mkt + h_book
    h_1     = clip(h_raw, floor_a, cap_a)
    w       = size_discount(scaled_initial_asset_weight(1 - h_1, scale_start, deposits_a), size_imf, q)
    h       = clip(1 - w, floor_a, cap_a)        (factors/venue_curves.py, Drift's; both only lower the weight)

Wrong-way risk. The collateral is wrong-way when it loses value together with the account's positions:
the account is long the collateral's own asset through perps, futures or options (Delta_a > 0), so a
fall in a cuts the collateral and the positions at once and both are sold into the same falling bid.
The fall itself is charged once: the positions' IM covers their own MPOR move and h_mkt the
collateral's, and for one asset the two losses are comonotone, so their sum is the joint quantile
(issue 12 item 6: an extra MPOR move on the matched share charged the positions' fall twice, 17,979
on 1 BTC + 1 long BTC perp at 60,000 and 60% vol against a joint 99% loss of 11,780). What the
overlap does add is the joint close-out: the collateral is sold after the long delta into the same
bid, so its book part is the marginal cost C(m + q) - C(m), not C(q) (more, for a convex cost).
A short exposure (Delta_a < 0) is the opposite case: the collateral rises when the short
loses, a hedge the haircut mode does not credit and the integrated mode prices directly.

Integrated mode: every non-USD balance (debts included) is added to the kernel's linear netting as a
spot delta (`collateral_deltas`), so the scenarios price its co-movement with the positions. h_mkt is
then 0 for the assets the scenarios move (assets with instruments; stablecoins when the de-peg
scenario is on); the book part, floors, caps and size scaling still apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from solvent._numba import jit, prange
from solvent.errors import InputError
from solvent.factors.held import HeldAssets
from solvent.factors.liquidity import BOOK, NO_DEPTH, SQRT_LAW, _walk, delta_cost, pack_liquidity
from solvent.factors.venue_curves import scaled_initial_asset_weight, size_discount
from solvent.market.depth import AssetLiquidity
from solvent.market.state import QUOTE_ASSETS, MarketState
from solvent.params import CollateralParams, MarginParams

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]


class CollateralRows(Protocol):
    """The collateral balances of N accounts in CSR form, the arrays the haircuts read (engine.book.Book is one).

    Rows of account n are col_offsets[n]:col_offsets[n+1]; col_asset (R,) indexes `collateral_assets`.
    """

    @property
    def collateral_assets(self) -> tuple[str, ...]: ...
    @property
    def col_offsets(self) -> IndexArray: ...
    @property
    def col_asset(self) -> NDArray[np.int32]: ...
    @property
    def col_amount(self) -> FloatArray: ...
    @property
    def n_accounts(self) -> int: ...
    def collateral_account(self) -> IndexArray: ...


def vol_haircut(vol: FloatArray, confidence: float, horizon_years: float) -> FloatArray:
    """(A,) 1 - exp(-z sigma sqrt(h)): the z-quantile fall of a lognormal price over the horizon, in [0, 1)."""
    z = float(ndtri(confidence))
    out: FloatArray = -np.expm1(-z * np.asarray(vol, dtype=np.float64) * math.sqrt(horizon_years))
    return out


def book_haircut(
    amount: FloatArray,
    liquidity: AssetLiquidity,
    price: float,
    daily_vol: float,
    stress: float,
    half_spread: float,
    coefficient: float,
    matched: FloatArray | None = None,
) -> FloatArray:
    """(R,) cost of selling each positive balance into the stressed bid, as a fraction of its value.

    The liquidity add-on's `delta_cost` of a long of q units (book walk, else square-root law, else 0)
    over q x price; 0 for a debt or an empty balance. Non-decreasing in q and in `stress`. `matched`
    (R,), units already sold into the same bid (the wrong-way long delta m, module docstring): the cost
    is then the marginal C(m + q) - C(m).
    """
    long = np.maximum(np.asarray(amount, dtype=np.float64), 0.0)
    cost = delta_cost(long, liquidity, price, daily_vol, stress, half_spread, coefficient)
    if matched is not None:
        m = np.maximum(np.asarray(matched, dtype=np.float64), 0.0)
        both = delta_cost(m + long, liquidity, price, daily_vol, stress, half_spread, coefficient)
        alone = delta_cost(m, liquidity, price, daily_vol, stress, half_spread, coefficient)
        cost = np.where(long > 0.0, both - alone, cost)
    value = long * price
    out: FloatArray = np.divide(cost, value, out=np.zeros_like(value), where=value > 0.0)
    return out


def wrong_way_delta(delta: FloatArray, wrong_way: float) -> FloatArray:
    """(R,) m = wrong_way x max(delta, 0): the long delta of the collateral's asset sold into the same bid."""
    out: FloatArray = wrong_way * np.maximum(np.asarray(delta, dtype=np.float64), 0.0)
    return out


def size_scaled_haircut(
    haircut: FloatArray, amount: FloatArray, deposits_value: FloatArray, start: float, imf_factor: float
) -> FloatArray:
    """(R,) 1 - size_discount(scaled_initial_asset_weight(1 - h, start, deposits), imf, q) (venue_curves.py).

    deposits_value: the asset's total deposits in USD (per row); start 0 and imf 0 leave h unchanged.
    """
    weight = scaled_initial_asset_weight(1.0 - np.asarray(haircut, dtype=np.float64), start, deposits_value)
    out: FloatArray = 1.0 - size_discount(weight, imf_factor, np.maximum(amount, 0.0))
    return out


def bounds(state: MarketState, collateral: CollateralParams) -> tuple[FloatArray, FloatArray]:
    """(A,) floor and cap per asset: `asset_floor` / `asset_cap` where given, else `floor` / `cap`."""
    floor = np.array([collateral.asset_floor.get(a, collateral.floor) for a in state.assets], dtype=np.float64)
    cap = np.array([collateral.asset_cap.get(a, collateral.cap) for a in state.assets], dtype=np.float64)
    return floor, cap


def market_haircut(state: MarketState, params: MarginParams, scenario_priced: NDArray[np.bool_]) -> FloatArray:
    """(A,) h_mkt per asset: 0 for USD and for assets priced by the scenarios, `depeg` for stablecoins, else h_vol."""
    collateral = params.collateral
    h_vol = vol_haircut(state.vol, params.confidence, params.mpor_days / params.days_per_year)
    stable = np.array([a in collateral.stablecoins for a in state.assets], dtype=np.bool_)
    quote = np.array([a in QUOTE_ASSETS for a in state.assets], dtype=np.bool_)
    h = np.where(stable, collateral.depeg, h_vol)
    out: FloatArray = np.where(quote | scenario_priced, 0.0, h)
    return out


def scenario_priced_assets(state: MarketState, params: MarginParams) -> NDArray[np.bool_]:
    """(A,) whether the scenarios move the asset's price, so the integrated mode prices it there."""
    priced = np.zeros(len(state.assets), dtype=np.bool_)
    collateral = params.collateral
    if collateral.mode != "integrated":
        return priced
    priced[np.unique(state.instruments.asset)] = True
    if collateral.depeg_scenario:
        priced |= np.array([a in collateral.stablecoins for a in state.assets], dtype=np.bool_)
    return priced


def require_collateral_vols(book: CollateralRows, state: MarketState, params: MarginParams, source: str) -> None:
    """Fail closed: with haircuts on, every collateral asset priced by its volatility needs a quoted vol.

    (Without one the effective vol would silently be `volatility.vol_floor`.) USD, stablecoins (de-peg
    haircut) and, in the integrated mode, assets the scenarios move are exempt.
    """
    if params.collateral.mode == "none" or state.vol_quoted.size == 0:
        return
    priced = scenario_priced_assets(state, params)
    index = state.asset_index
    for name in book.collateral_assets:
        a = index.get(name)
        exempt = a is None or name in QUOTE_ASSETS or name in params.collateral.stablecoins or bool(priced[a])
        if not exempt and a is not None and not state.vol_quoted[a]:
            raise InputError(source, f"assets.{name}.vol", "required for a collateral asset when haircuts are on")


@dataclass(frozen=True, eq=False)
class CollateralHaircuts:
    """Haircuts of one book: rate and value (USD removed) per collateral row (R,), and per account.

    by_account (N,) sums `value` per account; by_asset (N, A) splits it by collateral asset.
    """

    rate: FloatArray
    value: FloatArray
    by_account: FloatArray
    by_asset: FloatArray


def haircut_rates(
    book: CollateralRows,
    state: MarketState,
    params: MarginParams,
    columns: IndexArray,
    row_values: FloatArray,
    greeks: FloatArray,
) -> FloatArray:
    """(R,) the haircut h of every collateral row (module docstring), in [floor_a, cap_a] within [0, 1].

    columns (C,): market column of each `book.collateral_assets`; row_values (R,): USD value per row;
    greeks (N, A, 3): the positions' Greeks (delta in units of the asset).
    """
    collateral = params.collateral
    liquidity = params.liquidity
    col = columns[book.col_asset]
    account = book.collateral_account()
    amount = book.col_amount
    h_mkt = market_haircut(state, params, scenario_priced_assets(state, params))[col]
    matched = wrong_way_delta(greeks[account, col, 0], collateral.wrong_way) if greeks.size else np.zeros_like(amount)
    h_book = np.zeros_like(amount)
    if collateral.liquidity and state.liquidity:
        daily_vol = state.vol / math.sqrt(params.days_per_year)
        for c, a in enumerate(columns.tolist()):
            rows = np.flatnonzero(book.col_asset == c)
            if rows.size and state.assets[a] not in QUOTE_ASSETS:
                h_book[rows] = book_haircut(
                    amount[rows],
                    state.liquidity[a],
                    float(state.price[a]),
                    float(daily_vol[a]),
                    liquidity.stress,
                    liquidity.adv_half_spread,
                    liquidity.impact_coefficient,
                    matched[rows],
                )
    floor, cap = bounds(state, collateral)
    h = np.clip(h_mkt + h_book, floor[col], cap[col])
    if collateral.scale_start > 0.0 or collateral.size_imf > 0.0:
        deposits = np.bincount(col, weights=np.maximum(row_values, 0.0), minlength=len(state.assets)).astype(np.float64)
        scaled = size_scaled_haircut(h, amount, deposits[col], collateral.scale_start, collateral.size_imf)
        h = np.clip(scaled, floor[col], cap[col])
    out: FloatArray = np.asarray(h, dtype=np.float64)
    return out


def collateral_haircuts(
    book: CollateralRows,
    state: MarketState,
    params: MarginParams,
    columns: IndexArray,
    row_values: FloatArray,
    greeks: FloatArray,
    held: HeldAssets | None = None,
) -> CollateralHaircuts:
    """Rates and USD removed: value = h x max(row value, 0) (debts keep their full value).

    greeks: the positions' Greeks, (N, A, 3), or (H, 3) on the rows of `held`; empty: none.
    The fused form of `collateral_haircuts_numpy`: the per-asset pieces (h_mkt, bounds, the packed
    book, deposits) in numpy, then `_haircut_kernel` over the rows, parallel over accounts.
    """
    collateral = params.collateral
    liquidity = params.liquidity
    n, n_assets = book.n_accounts, len(state.assets)
    n_rows = book.col_amount.size
    h_mkt = np.ascontiguousarray(market_haircut(state, params, scenario_priced_assets(state, params)), dtype=np.float64)
    floor, cap = bounds(state, collateral)
    kind = np.full(n_assets, NO_DEPTH, dtype=np.int8)
    curves = np.zeros((2, n_assets, 4, 2))
    knots = np.zeros((2, n_assets), dtype=np.int64)
    adv = np.full(n_assets, np.nan)
    if collateral.liquidity and state.liquidity:
        packed = pack_liquidity(state.liquidity)
        quote = np.array([a in QUOTE_ASSETS for a in state.assets], dtype=np.bool_)
        kind = np.where(quote, NO_DEPTH, packed.kind).astype(np.int8)
        curves, knots, adv = packed.curves, packed.knots, packed.adv
    daily_vol = np.asarray(state.vol, dtype=np.float64) / math.sqrt(params.days_per_year)
    scale = collateral.scale_start > 0.0 or collateral.size_imf > 0.0
    deposits = np.zeros(n_assets)
    if scale and n_rows:
        by_code = np.bincount(book.col_asset, weights=np.maximum(row_values, 0.0), minlength=columns.size)
        np.add.at(deposits, columns, by_code)
    row_delta = np.zeros(n_rows)  # the positions' net delta in each balance's asset
    if greeks.size and n_rows:
        account, col = book.collateral_account(), columns[book.col_asset]
        row_delta = greeks[account, col, 0] if held is None else held.gather(greeks[:, 0], account, col)
    rate = np.empty(n_rows)
    value = np.empty(n_rows)
    by_account = np.zeros(n)
    by_asset = np.zeros((n, n_assets))
    if n_rows:
        _haircut_kernel(
            book.col_offsets,
            book.col_asset,
            book.col_amount,
            np.asarray(row_values, dtype=np.float64),
            columns,
            np.ascontiguousarray(row_delta, dtype=np.float64),
            h_mkt,
            floor,
            cap,
            kind,
            curves,
            knots,
            adv,
            np.asarray(state.price, dtype=np.float64),
            daily_vol,
            deposits,
            liquidity.stress,
            liquidity.adv_half_spread,
            liquidity.impact_coefficient,
            collateral.wrong_way,
            scale,
            collateral.scale_start,
            collateral.size_imf,
            rate,
            value,
            by_account,
            by_asset,
        )
    return CollateralHaircuts(rate=rate, value=value, by_account=by_account, by_asset=by_asset)


@jit(parallel=True)
def _haircut_kernel(
    offsets: IndexArray,
    code: NDArray[np.int32],
    amount: FloatArray,
    row_values: FloatArray,
    columns: IndexArray,
    delta: FloatArray,
    h_mkt: FloatArray,
    floor: FloatArray,
    cap: FloatArray,
    kind: NDArray[np.int8],
    curves: FloatArray,
    knots: NDArray[np.int64],
    adv: FloatArray,
    price: FloatArray,
    daily_vol: FloatArray,
    deposits: FloatArray,
    stress: float,
    half_spread: float,
    coefficient: float,
    wrong_way: float,
    scale: bool,
    start: float,
    imf: float,
    rate: FloatArray,
    value: FloatArray,
    by_account: FloatArray,
    by_asset: FloatArray,
) -> None:
    n_accounts = offsets.size - 1
    for n in prange(n_accounts):
        total = 0.0
        for r in range(offsets[n], offsets[n + 1]):
            a = columns[code[r]]
            q = amount[r]
            h_book = 0.0
            if q > 0.0:
                m = wrong_way * max(delta[r], 0.0)  # the long delta sold first into the same bid
                p = price[a]
                worth = q * p
                if worth > 0.0:
                    if kind[a] == BOOK:
                        cost = _walk((m + q) * stress, curves[0, a], knots[0, a])
                        if m > 0.0:
                            cost -= _walk(m * stress, curves[0, a], knots[0, a])
                        h_book = p * cost / stress / worth
                    elif kind[a] == SQRT_LAW:
                        k = coefficient * daily_vol[a]
                        both = (m + q) * (half_spread + k * math.sqrt((m + q) * stress / adv[a]))
                        alone = m * (half_spread + k * math.sqrt(m * stress / adv[a]))
                        h_book = p * (both - alone) / worth
            h = min(max(h_mkt[a] + h_book, floor[a]), cap[a])
            if scale:
                w = 1.0 - h
                if start > 0.0 and deposits[a] >= start:
                    w = w * start / deposits[a]
                w = min(w, 1.1 / (1.0 + imf * math.sqrt(max(q, 0.0))))
                h = min(max(1.0 - w, floor[a]), cap[a])
            v = h * max(row_values[r], 0.0)
            rate[r] = h
            value[r] = v
            by_asset[n, a] += v
            total += v
        by_account[n] = total


def collateral_haircuts_numpy(
    book: CollateralRows,
    state: MarketState,
    params: MarginParams,
    columns: IndexArray,
    row_values: FloatArray,
    greeks: FloatArray,
) -> CollateralHaircuts:
    """The numpy twin of `collateral_haircuts`: rates by `haircut_rates`, then bincounts per account and asset."""
    rate = haircut_rates(book, state, params, columns, row_values, greeks)
    value = rate * np.maximum(row_values, 0.0)
    account = book.collateral_account()
    n, n_assets = book.n_accounts, len(state.assets)
    flat = account * n_assets + columns[book.col_asset]
    by_asset = np.bincount(flat, weights=value, minlength=n * n_assets).astype(np.float64).reshape(n, n_assets)
    by_account = np.bincount(account, weights=value, minlength=n).astype(np.float64)
    return CollateralHaircuts(rate=rate, value=value, by_account=by_account, by_asset=by_asset)


def collateral_deltas(book: CollateralRows, state: MarketState, columns: IndexArray) -> FloatArray:
    """(N, A) every account's non-USD balances (debts negative) as spot deltas, for the kernel's netting."""
    n, n_assets = book.n_accounts, len(state.assets)
    col = columns[book.col_asset]
    moves = np.array([a not in QUOTE_ASSETS for a in state.assets], dtype=np.bool_)[col]
    flat = book.collateral_account() * n_assets + col
    weights = np.where(moves, book.col_amount, 0.0)
    out: FloatArray = np.bincount(flat, weights=weights, minlength=n * n_assets).astype(np.float64)
    return out.reshape(n, n_assets)
