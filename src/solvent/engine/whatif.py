"""Pre-trade what-if: one account's IM after a proposed order, and whether the order is allowed.

The caller keeps each account's scenario P&L vector (S,) and Greeks (A, 3) (`account_scenario_pnl`,
`account_greeks`, or `margin_book`'s Greeks); an order of q units of instrument i is then an O(S)
update, never a re-margin of the account:

    pnl'    = pnl + q x instrument_pnl[i]                    (an option)
            = pnl + q x linear_weight[i] x asset_pnl[a]      (a linear product on asset a)
    greeks' = greeks, with greeks'[a] = greeks[a] + q x unit_greeks[i]

and the IM terms are recomputed for this one account exactly as `margin_book` assembles them:
market risk = sum over scenario groups of max(measure, 0) (the fused kernel's reduction,
`measures.reduce_group`), apc buffer, liquidity (close-out cost of net delta and vega), concentration
(SIMM form with the thresholds the caller passes, computed once per market state; or the ramp),
oracle buffer, all times the account's risk tier.

The rules (docs/model.md, "Pre-trade what-if"), `price` in USD per unit of the underlying (as entry
prices and Black-76 premiums are quoted), so one contract trades at contract_size x price:

    instant      = -q x (contract_size x price - mark)      the fill's P&L against the mark
    equity_after = equity - fee + min(instant, 0)           losses count, gains at an off-mark price do not
        mark = contract_size x forward (a linear product), the premium value of one contract (an option)
    off-market   = |price - mark / contract_size| > pretrade.price_band x forward
    reduces risk = im_after <= im_before and (the order shrinks the account's position in the instrument
                   without flipping it, or shrinks |net delta| of the asset)
    allowed      = every number is finite, the instrument exists, q != 0, price > 0, the price is not
                   off-market, and
                   - with `reduce_only`, the order shrinks the position and im_after <= im_before;
                   - an order that does not reduce risk is refused while the asset's oracle is degraded;
                   - equity_after >= im_after, or the order reduces risk (allowed even below IM).

`PreTradeChecker.check` is the fast path (one compiled call, preallocated buffers); `im_numpy` is its
slow, obviously correct twin built from the factor modules' numpy functions; the tests tie both to
`margin_book` run on the book with the order applied.

Over 600 lines because the what-if repeats, for one account, every IM term `margin_book` assembles (each
compiled into `_terms`), and keeps its slow twin `im_numpy` beside it: the two change together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit
from solvent.engine.measures import MEASURE_CODES, reduce_group, risk_measure_numpy
from solvent.engine.riskarrays import RiskArrays
from solvent.factors.basis import BookLayout, basis_numpy, book_layout, book_sides, books_terms
from solvent.factors.concentration import (
    exposure,
    ramp_add_on,
    side_thresholds,
    simm_add_on,
    stressed_depth,
)
from solvent.factors.liquidity import (
    BOOK,
    SQRT_LAW,
    VOL_POINT,
    _walk,
    liquidity_by_asset,
    pack_liquidity,
    sqrt_impact_cost,
    vega_cost,
    walk_cost,
)
from solvent.factors.oracle_buffer import oracle_buffer_numpy
from solvent.market.oracle import OracleStatus
from solvent.market.stable_price import stable_price_charge
from solvent.market.state import OPTION, MarketState
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]

#: Decision reasons (a closed set).
OK = "ok"
INSUFFICIENT_MARGIN = "insufficient margin"
ORACLE_DEGRADED = "oracle degraded"
REDUCE_ONLY = "reduce-only"
NOT_FINITE = "not finite"
UNKNOWN_INSTRUMENT = "unknown instrument"
EMPTY_ORDER = "empty order"
PRICE_NOT_POSITIVE = "price not positive"
OFF_MARKET = "off-market price"

# Columns of the per-asset table the check kernel reads (rows of `_asset_table`).
_PRICE, _DAILY_VOL, _ADV, _VOL_SPREAD, _LONG_T, _SHORT_T, _UNCERTAINTY, _KIND = range(8)
# Entries of the kernel's config vector.
_CONFIDENCE, _MEASURE, _STRESS, _HALF_SPREAD, _COEFFICIENT, _ORACLE_MULT, _LIQ_ON, _SIMM_ON, _ORACLE_ON = range(9)
# Columns of the kernel's output rows (row 0: before the order, row 1: after).
_MARKET, _LIQUIDITY, _CONCENTRATION, _ORACLE, _FINITE = range(5)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of one pre-trade check: allowed or not, why, and the numbers it rests on (NaN when
    the check refused before computing them)."""

    allowed: bool
    reason: str
    im_before: float
    im_after: float
    equity_after: float


# ----------------------------------------------------------------------------------- account state


@jit()
def _account_pnl_kernel(
    pos_instrument: NDArray[np.int32],
    pos_quantity: FloatArray,
    instrument_asset: NDArray[np.int32],
    instrument_pnl: FloatArray,
    linear_weight: FloatArray,
    asset_pnl: FloatArray,
    delta: FloatArray,
    out: FloatArray,
) -> None:
    """out (S,) = the account's scenario P&L, built as the fused kernel builds it: options' rows, then
    each asset's netted linear delta (delta (A,) holds any extra units on entry) x its risk array."""
    out[:] = 0.0
    for p in range(pos_instrument.shape[0]):
        i = pos_instrument[p]
        q = pos_quantity[p]
        w = linear_weight[i]
        if w != 0.0:
            delta[instrument_asset[i]] += q * w
        else:
            for s in range(out.shape[0]):
                out[s] += q * instrument_pnl[i, s]
    for a in range(delta.shape[0]):
        d = delta[a]
        if d != 0.0:
            for s in range(out.shape[0]):
                out[s] += d * asset_pnl[a, s]


def account_scenario_pnl(
    instrument: NDArray[np.int32],
    quantity: FloatArray,
    arrays: RiskArrays,
    out: FloatArray | None = None,
    extra_delta: FloatArray | None = None,
) -> FloatArray:
    """(S,) one account's scenario P&L from its positions (instrument, quantity: (P,)).

    `extra_delta` (A,), optional: units of each asset netted with the linear positions (collateral in
    the integrated collateral mode, as `margins(extra_delta=...)`). `out` (S,) is overwritten if given.
    """
    if instrument.shape != quantity.shape:
        raise ValueError(f"instrument and quantity must have the same shape, got {instrument.shape}, {quantity.shape}")
    n_scen = arrays.n_scenarios
    if out is None:
        out = np.empty(n_scen, dtype=np.float64)
    elif out.shape != (n_scen,):
        raise ValueError(f"out must be ({n_scen},), got {out.shape}")
    delta = np.zeros(arrays.n_assets) if extra_delta is None else np.array(extra_delta, dtype=np.float64)
    if delta.shape != (arrays.n_assets,):
        raise ValueError(f"extra_delta must be ({arrays.n_assets},), got {delta.shape}")
    positions = np.ascontiguousarray(instrument, dtype=np.int32)
    if arrays.pnl_is_dense:
        rows, assets, weights = arrays.pnl_rows, arrays.instrument_asset, arrays.linear_weight
    else:  # only the account's instruments' rows, scattered (never the whole dense view), indexed locally
        picked, local = np.unique(positions, return_inverse=True)
        positions = np.ascontiguousarray(local, dtype=np.int32)
        rows = arrays.dense_rows(picked)
        assets = np.ascontiguousarray(arrays.instrument_asset[picked])
        weights = np.ascontiguousarray(arrays.linear_weight[picked])
    _account_pnl_kernel(
        positions,
        np.ascontiguousarray(quantity, dtype=np.float64),
        assets,
        rows,
        weights,
        arrays.asset_pnl,
        delta,
        out,
    )
    return out


def account_greeks(instrument: NDArray[np.int32], quantity: FloatArray, arrays: RiskArrays) -> FloatArray:
    """(A, 3) one account's delta, gamma, vega per asset from its positions (instrument, quantity: (P,))."""
    out = np.zeros((arrays.n_assets, 3), dtype=np.float64)
    np.add.at(out, arrays.instrument_asset[instrument], quantity[:, np.newaxis] * arrays.unit_greeks[instrument])
    return out


def apply_order(
    pnl: FloatArray, greeks: FloatArray, instrument: int, quantity: float, arrays: RiskArrays
) -> tuple[FloatArray, FloatArray]:
    """(pnl', greeks'): new arrays, the account's scenario P&L (S,) and Greeks (A, 3) after buying
    `quantity` (signed) of `instrument`; the inputs are not modified. Keep them when the order fills."""
    new_pnl = np.array(pnl, dtype=np.float64)
    new_greeks = np.array(greeks, dtype=np.float64)
    a = int(arrays.instrument_asset[instrument])
    w = float(arrays.linear_weight[instrument])
    if w != 0.0:
        new_pnl += (quantity * w) * arrays.asset_pnl[a]
    else:
        new_pnl += quantity * arrays.dense_rows(np.array([instrument]))[0]
    new_greeks[a] += quantity * arrays.unit_greeks[instrument]
    return new_pnl, new_greeks


def apply_books(
    books: FloatArray, instrument: int, quantity: float, arrays: RiskArrays, layout: BookLayout
) -> FloatArray:
    """books' (A, B, 2): a new array, the account's books after buying `quantity` (signed) of `instrument`."""
    new_books = np.array(books, dtype=np.float64)
    a, b = int(arrays.instrument_asset[instrument]), int(layout.instrument_book[instrument])
    new_books[a, b, 0] += quantity * arrays.unit_greeks[instrument, 0]
    new_books[a, b, 1] += quantity * arrays.unit_greeks[instrument, 2]
    return new_books


# ----------------------------------------------------------------------------------- thresholds


def concentration_thresholds(
    state: MarketState, params: MarginParams, open_interest: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """(long, short): (A,) the SIMM concentration thresholds `margin_book` uses at `state` (infinite when
    the SIMM form is off). `open_interest` (A,) USD, the book's (`open_interest_of`), is needed only
    when `concentration.oi_share` is set. Compute once per market state and pass to `PreTradeChecker`.
    """
    conc = params.concentration
    n_assets = len(state.assets)
    if not (conc.enabled and conc.form == "simm"):
        return np.full(n_assets, math.inf), np.full(n_assets, math.inf)
    if conc.oi_share is not None and open_interest is None:
        raise ValueError("concentration.oi_share is set: pass the book's open_interest (A,)")
    bid: FloatArray | None = None
    ask: FloatArray | None = None
    if state.liquidity and conc.depth_share is not None:
        bid, ask = stressed_depth(state.liquidity, state.price, conc.depth_distance, params.liquidity.stress)
    return side_thresholds(
        n_assets, conc.threshold, open_interest, conc.oi_share, bid, ask, conc.depth_share, conc.relative_floor
    )


# ----------------------------------------------------------------------------------- the kernel


@jit()
def _market_risk_kernel(
    pnl: FloatArray, group_offsets: NDArray[np.int64], confidence: float, measure: int, top: FloatArray
) -> float:
    """Sum over scenario groups of max(risk measure of -pnl in the group, 0): the fused kernel's reduction."""
    total = 0.0
    for g in range(group_offsets.shape[0] - 1):
        value = reduce_group(pnl, group_offsets[g], group_offsets[g + 1], confidence, measure, top)
        if value > 0.0:
            total += value
    return total


def market_risk(pnl: FloatArray, arrays: RiskArrays, confidence: float, measure: str) -> float:
    """The market-risk term of one account from its scenario P&L (S,), as `margins` computes it."""
    if pnl.shape != (arrays.n_scenarios,):
        raise ValueError(f"pnl must be ({arrays.n_scenarios},), got {pnl.shape}")
    top = np.empty(arrays.n_scenarios + 1)
    return float(
        _market_risk_kernel(
            np.ascontiguousarray(pnl, dtype=np.float64), arrays.group_offsets, confidence, MEASURE_CODES[measure], top
        )
    )


@jit()
def _terms(
    pnl: FloatArray,
    greeks: FloatArray,
    group_offsets: NDArray[np.int64],
    table: FloatArray,
    curves: FloatArray,
    knots: NDArray[np.int64],
    config: FloatArray,
    top: FloatArray,
    out: FloatArray,
) -> None:
    """out[:4] = market risk, liquidity, SIMM concentration and oracle buffer of one account (pnl (S,),
    greeks (A, 3)), each the same formula as the engine's kernels for one row."""
    market = _market_risk_kernel(pnl, group_offsets, config[_CONFIDENCE], int(config[_MEASURE]), top)
    out[_MARKET] = market
    n_assets = greeks.shape[0]
    liquidity = 0.0
    if config[_LIQ_ON] != 0.0:
        stress = config[_STRESS]
        for a in range(n_assets):
            q = greeks[a, 0]
            cost = 0.0
            if q != 0.0:
                size = abs(q)
                kind = int(table[_KIND, a])
                price = table[_PRICE, a]
                if kind == BOOK:
                    side = 0 if q > 0.0 else 1
                    cost = price * _walk(size * stress, curves[side, a], knots[side, a]) / stress
                elif kind == SQRT_LAW:
                    impact = config[_COEFFICIENT] * table[_DAILY_VOL, a] * math.sqrt(size * stress / table[_ADV, a])
                    cost = price * size * (config[_HALF_SPREAD] + impact)
            spread = table[_VOL_SPREAD, a]
            if spread == spread:  # not NaN
                cost += abs(greeks[a, 2]) * (spread / 2.0 / VOL_POINT) * stress
            liquidity += cost
    out[_LIQUIDITY] = liquidity
    concentration = 0.0
    if config[_SIMM_ON] != 0.0:
        gross = 0.0
        gross_risk = 0.0  # split by each asset's own risk |x| x vol (daily vol: the common factor cancels)
        for a in range(n_assets):
            size = abs(greeks[a, 0] * table[_PRICE, a])
            gross += size
            gross_risk += size * table[_DAILY_VOL, a]
        safe = gross if gross > 0.0 else 1.0
        for a in range(n_assets):
            x = greeks[a, 0] * table[_PRICE, a]
            size = abs(x)
            share = size * table[_DAILY_VOL, a] / gross_risk if gross_risk > 0.0 else size / safe
            part = market * share
            if size > 0.0 and part > 0.0:
                t = table[_LONG_T, a] if x >= 0.0 else table[_SHORT_T, a]
                cr = max(1.0, math.sqrt(size / t)) if t > 0.0 else math.inf
                concentration += (cr - 1.0) * part
    out[_CONCENTRATION] = concentration
    oracle = 0.0
    if config[_ORACLE_ON] != 0.0:
        for a in range(n_assets):
            oracle += config[_ORACLE_MULT] * abs(greeks[a, 0]) * table[_UNCERTAINTY, a]
    out[_ORACLE] = oracle


#: The option row passed for a linear instrument, which moves with its asset's risk array instead.
_NO_ROW = np.empty(0, dtype=np.float64)


@jit()
def _check_kernel(
    pnl: FloatArray,
    greeks: FloatArray,
    instrument: int,
    quantity: float,
    instrument_asset: NDArray[np.int32],
    option_row: FloatArray,
    linear_weight: FloatArray,
    asset_pnl: FloatArray,
    unit_greeks: FloatArray,
    group_offsets: NDArray[np.int64],
    table: FloatArray,
    curves: FloatArray,
    knots: NDArray[np.int64],
    config: FloatArray,
    new_pnl: FloatArray,
    new_greeks: FloatArray,
    top: FloatArray,
    out: FloatArray,
) -> None:
    """Fill new_pnl (S,), new_greeks (A, 3) after the order and out (2, 5): the terms before (row 0)
    and after (row 1), column _FINITE 1.0 where every P&L and Greek entry of that state is finite. `option_row`
    (S,): one unit's P&L of an option (read only when the instrument is not linear)."""
    a = instrument_asset[instrument]
    w = linear_weight[instrument]
    row = asset_pnl[a] if w != 0.0 else option_row
    d = quantity * w if w != 0.0 else quantity
    poison = 0.0  # 0 x v is NaN for an infinite or NaN v: one branch-free pass checks every entry
    for s in range(pnl.shape[0]):
        v = pnl[s] + d * row[s]
        new_pnl[s] = v
        poison += 0.0 * v
    for b in range(greeks.shape[0]):
        for k in range(3):
            v = greeks[b, k]
            poison += 0.0 * v
            if b == a:
                v += quantity * unit_greeks[instrument, k]
            new_greeks[b, k] = v
            poison += 0.0 * v
    finite = poison == 0.0
    # A finite pnl' implies a finite pnl (inf or NaN propagates through the sum), likewise the Greeks.
    out[0, _FINITE] = 1.0 if finite else 0.0
    out[1, _FINITE] = out[0, _FINITE]
    _terms(pnl, greeks, group_offsets, table, curves, knots, config, top, out[0])
    _terms(new_pnl, new_greeks, group_offsets, table, curves, knots, config, top, out[1])


# ----------------------------------------------------------------------------------- the checker


def off_market(price: float, mark: float, forward: float, band: float) -> bool:
    """Whether a fill at `price` is outside the band around `mark` (both USD per unit of the underlying):
    |price - mark| > band x forward, the rule of `pretrade.price_band` (docs/model.md, "Pre-trade what-if").
    Not finite is off-market (fail closed)."""
    return not abs(price - mark) <= band * forward


class PreTradeChecker:
    """Built once per market state, risk arrays and parameters; `check` answers one order in O(S + A).

    long_threshold, short_threshold (A,): the SIMM concentration thresholds (`concentration_thresholds`);
    open_interest (A,) USD: needed only for the ramp form driven by open interest. Not thread-safe: the
    work buffers are reused by every check (one checker per thread).
    """

    def __init__(
        self,
        state: MarketState,
        arrays: RiskArrays,
        params: MarginParams,
        long_threshold: FloatArray,
        short_threshold: FloatArray,
        open_interest: FloatArray | None = None,
    ) -> None:
        n_assets = len(state.assets)
        n_instruments = len(state.instruments)
        if arrays.n_assets != n_assets or arrays.pnl_rows.shape[0] != n_instruments:
            raise ValueError(
                f"risk arrays ({arrays.n_assets} assets, {arrays.pnl_rows.shape[0]} instruments) do not match "
                f"the market state ({n_assets} assets, {n_instruments} instruments)"
            )
        for name, values in (("long_threshold", long_threshold), ("short_threshold", short_threshold)):
            if values.shape != (n_assets,) or bool(np.any(np.isnan(values))) or bool(np.any(values < 0.0)):
                raise ValueError(f"{name}: ({n_assets},) non-negative thresholds expected, got {values!r}")
        conc = params.concentration
        self._ramp = conc.enabled and conc.form == "ramp"
        self._oi = np.zeros(n_assets)
        if self._ramp and conc.ramp_driver == "open_interest":
            if open_interest is None or open_interest.shape != (n_assets,):
                raise ValueError(f"concentration ramp driven by open interest: pass open_interest ({n_assets},)")
            self._oi = np.asarray(open_interest, dtype=np.float64)
        self._params = params
        self.state = state
        self.arrays = arrays
        self.n_instruments = n_instruments
        self._price = state.price

        liq_on = params.liquidity.enabled and bool(state.liquidity)
        table = np.zeros((8, n_assets))
        table[_PRICE] = state.price
        table[_DAILY_VOL] = state.vol / np.sqrt(params.days_per_year)
        table[_LONG_T] = long_threshold
        table[_SHORT_T] = short_threshold
        if liq_on:
            packed = pack_liquidity(state.liquidity)
            table[_ADV] = packed.adv
            table[_VOL_SPREAD] = packed.vol_spread
            table[_KIND] = packed.kind
            self._curves, self._knots = packed.curves, packed.knots
        else:
            self._curves, self._knots = np.zeros((2, n_assets, 4, 2)), np.zeros((2, n_assets), dtype=np.int64)
        self._oracle_on = state.has_oracle
        if self._oracle_on:
            table[_UNCERTAINTY] = state.oracle_uncertainty
        self._table = np.ascontiguousarray(table)
        status = state.oracle_status
        if status.size not in (0, n_assets):
            raise ValueError(f"oracle_status: ({n_assets},) expected, got {status.shape}")
        self._oracle_ok = [True] * n_assets if status.size == 0 else [int(s) == OracleStatus.OK for s in status]
        # Mango's stable price (issue 12 item 3): the `stable_price` IM term, after the tier, when the state has one.
        self._stable = state.stable_price if state.stable_price.size else None

        self._config = np.zeros(9)
        self._config[_CONFIDENCE] = params.confidence
        self._config[_MEASURE] = MEASURE_CODES[params.measure]
        self._config[_STRESS] = params.liquidity.stress
        self._config[_HALF_SPREAD] = params.liquidity.adv_half_spread
        self._config[_COEFFICIENT] = params.liquidity.impact_coefficient
        self._config[_ORACLE_MULT] = params.oracle.buffer_factor
        self._config[_LIQ_ON] = float(liq_on)
        self._config[_SIMM_ON] = float(conc.enabled and conc.form == "simm")
        self._config[_ORACLE_ON] = float(self._oracle_on)
        self._apc = params.volatility.apc_buffer if params.volatility.apc_mode == "buffer" else 0.0
        self.layout: BookLayout = book_layout(state.instruments)
        basis = params.basis
        self._basis_on = basis.enabled
        self._basis_rate = (basis.rate, basis.vega_contingency) if basis.enabled else (0.0, 0.0)
        self._liq_on = liq_on
        self._daily_vol = np.ascontiguousarray(table[_DAILY_VOL])
        self._adv = np.ascontiguousarray(table[_ADV]) if liq_on else np.full(n_assets, math.nan)
        self._vol_spread = np.ascontiguousarray(table[_VOL_SPREAD]) if liq_on else np.full(n_assets, math.nan)
        self._kind = np.ascontiguousarray(table[_KIND].astype(np.int8))
        self._books_shape = (n_assets, self.layout.n_books, 2)

        is_option = state.instruments.kind == OPTION
        size = state.instruments.contract_size
        self._size = size.tolist()
        self._mark = np.where(is_option, arrays.value, size * state.forward).tolist()
        self._forward = np.asarray(state.forward, dtype=np.float64).tolist()
        self._band = params.pretrade.price_band
        self._asset = arrays.instrument_asset.tolist()

        n_scen = arrays.n_scenarios
        self._pnl_shape = (n_scen,)
        self._greeks_shape = (n_assets, 3)
        self._new_pnl = np.empty(n_scen)
        self._new_greeks = np.empty((n_assets, 3))
        self._top = np.empty(n_scen + 1)
        self._out = np.zeros((2, 5))

    def _ramp_term(self, greeks: FloatArray) -> float:
        conc = self._params.concentration
        notional = exposure(greeks[np.newaxis, :, 0], self._price)
        add_on = ramp_add_on(
            notional, conc.ramp_base_imf, conc.ramp_lower_cap, conc.ramp_upper_cap, conc.ramp_driver, self._oi
        )
        return float(add_on.sum())

    def _book_terms(self, books: FloatArray) -> tuple[float, float]:
        """(liquidity per book, basis) of one account's books (A, B, 2) (factors/basis.py)."""
        liquidity = self._params.liquidity
        rate, vega_rate = self._basis_rate
        liq, basis = books_terms(
            books,
            self._price,
            rate,
            vega_rate,
            self._liq_on,
            self._kind,
            self._curves,
            self._knots,
            self._adv,
            self._vol_spread,
            self._daily_vol,
            liquidity.stress,
            liquidity.adv_half_spread,
            liquidity.impact_coefficient,
        )
        return float(liq), float(basis)

    def _im(
        self, row: FloatArray, greeks: FloatArray, tier: float, held: FloatArray | None = None, basis: float = 0.0
    ) -> float:
        market = float(row[_MARKET])
        subtotal = market + self._apc * market + float(row[_LIQUIDITY]) + basis
        subtotal += self._ramp_term(greeks) if self._ramp else float(row[_CONCENTRATION])
        subtotal += float(row[_ORACLE])
        if self._stable is None:
            return tier * subtotal
        delta = greeks[:, 0] if held is None else greeks[:, 0] + held
        return tier * subtotal + float(stable_price_charge(delta, self._price, self._stable).sum())

    def check(
        self,
        pnl: FloatArray,
        greeks: FloatArray,
        equity: float,
        tier: float,
        instrument: int,
        quantity: float,
        price: float,
        fee: float = 0.0,
        position: float = 0.0,
        reduce_only: bool = False,
        held: FloatArray | None = None,
        *,
        books: FloatArray | None = None,
    ) -> Decision:
        """Whether `quantity` (signed; > 0 buys) of `instrument` at `price` (USD per unit of the
        underlying) may trade for an account with scenario P&L `pnl` (S,), Greeks `greeks` (A, 3),
        equity `equity` (USD, as `margin_book` reports it), risk tier multiplier `tier` (1.0 when the
        account has none) and `position` units of `instrument` already held; `held` (A,), optional: the
        account's collateral balances in units, long delta for the `stable_price` term. The inputs are not
        modified.

        `books` (A, B, 2): the account's delta and vega per asset and book (`account_books`), for the per-book
        close-out and the basis term. Required where an asset lists instruments on several books (spot, perp,
        expiries: `layout.single` is False); without it there the check raises (it cannot price the basis).
        """
        if pnl.shape != self._pnl_shape or greeks.shape != self._greeks_shape:
            raise ValueError(
                f"pnl {pnl.shape} and greeks {greeks.shape} must be {self._pnl_shape} and {self._greeks_shape}"
            )
        if pnl.dtype != np.float64 or greeks.dtype != np.float64:
            raise ValueError(f"pnl and greeks must be float64, got {pnl.dtype} and {greeks.dtype}")
        if books is None and not self.layout.single:
            raise ValueError("an asset trades on several books (spot, perpetual, expiries): pass the account's books")
        if books is not None and (books.shape != self._books_shape or books.dtype != np.float64):
            raise ValueError(f"books must be float64 {self._books_shape}, got {books.dtype} {books.shape}")
        nan = math.nan
        if not 0 <= instrument < self.n_instruments:
            return Decision(False, UNKNOWN_INSTRUMENT, nan, nan, nan)
        q = float(quantity)
        if not (
            math.isfinite(q)
            and math.isfinite(price)
            and math.isfinite(fee)
            and math.isfinite(equity)
            and math.isfinite(tier)
            and math.isfinite(position)
        ):
            return Decision(False, NOT_FINITE, nan, nan, nan)
        if q == 0.0:
            return Decision(False, EMPTY_ORDER, nan, nan, nan)
        if price <= 0.0:
            return Decision(False, PRICE_NOT_POSITIVE, nan, nan, nan)
        size = self._size[instrument]
        mark = self._mark[instrument]
        if off_market(price, mark / size, self._forward[instrument], self._band):
            return Decision(False, OFF_MARKET, nan, nan, nan)
        arrays = self.arrays
        out = self._out
        _check_kernel(
            pnl,
            greeks,
            instrument,
            q,
            arrays.instrument_asset,
            _NO_ROW if arrays.linear_weight[instrument] != 0.0 else arrays.unit_row(instrument),
            arrays.linear_weight,
            arrays.asset_pnl,
            arrays.unit_greeks,
            arrays.group_offsets,
            self._table,
            self._curves,
            self._knots,
            self._config,
            self._new_pnl,
            self._new_greeks,
            self._top,
            out,
        )
        basis_before = basis_after = 0.0
        if books is not None:
            new_books = apply_books(books, instrument, q, arrays, self.layout)
            out[0, _LIQUIDITY], basis_before = self._book_terms(books)
            out[1, _LIQUIDITY], basis_after = self._book_terms(new_books)
        im_before = self._im(out[0], greeks, tier, held, basis_before)
        im_after = self._im(out[1], self._new_greeks, tier, held, basis_after)
        # Credit the fill's losses against the mark, never its gains: a better-than-mark price is not equity
        # that the venue can count on (issue 12 item 2).
        equity_after = equity - fee + min(-q * (size * price - mark), 0.0)
        if out[0, _FINITE] != 1.0 or not (
            math.isfinite(im_before) and math.isfinite(im_after) and math.isfinite(equity_after)
        ):
            return Decision(False, NOT_FINITE, im_before, im_after, equity_after)
        a = self._asset[instrument]
        closes = position * q < 0.0 and abs(q) <= abs(position)
        hedges = abs(float(self._new_greeks[a, 0])) < abs(float(greeks[a, 0]))
        no_more_im = im_after <= im_before
        reduces = no_more_im and (closes or hedges)
        if reduce_only and not (closes and no_more_im):
            return Decision(False, REDUCE_ONLY, im_before, im_after, equity_after)
        if not reduces and not self._oracle_ok[a]:
            return Decision(False, ORACLE_DEGRADED, im_before, im_after, equity_after)
        if equity_after >= im_after or reduces:
            return Decision(True, OK, im_before, im_after, equity_after)
        return Decision(False, INSUFFICIENT_MARGIN, im_before, im_after, equity_after)

    def apply(
        self, pnl: FloatArray, greeks: FloatArray, instrument: int, quantity: float
    ) -> tuple[FloatArray, FloatArray]:
        """(pnl', greeks') after the order fills: new arrays for the caller to keep (`apply_order`)."""
        return apply_order(pnl, greeks, instrument, quantity, self.arrays)


# ----------------------------------------------------------------------------------- the slow twin


def im_numpy(
    pnl: FloatArray,
    greeks: FloatArray,
    tier: float,
    state: MarketState,
    arrays: RiskArrays,
    params: MarginParams,
    long_threshold: FloatArray,
    short_threshold: FloatArray,
    open_interest: FloatArray | None = None,
    held: FloatArray | None = None,
    books: FloatArray | None = None,
) -> float:
    """One account's IM from its scenario P&L (S,), Greeks (A, 3) and, where assets trade on several books, its
    books (A, B, 2) with the factor modules' numpy functions (full sort, dense arrays): the slow, obviously correct
    twin of `PreTradeChecker._im`."""
    g = greeks[np.newaxis]
    market = 0.0
    for start, stop in zip(arrays.group_offsets[:-1], arrays.group_offsets[1:], strict=True):
        value = float(risk_measure_numpy(-pnl[np.newaxis, start:stop], params.confidence, params.measure)[0])
        market += max(value, 0.0)
    subtotal = market
    if params.volatility.apc_mode == "buffer":
        subtotal += params.volatility.apc_buffer * market
    if params.liquidity.enabled and state.liquidity:
        liquidity = params.liquidity
        daily_vol = state.vol / np.sqrt(params.days_per_year)
        if books is None:
            subtotal += float(
                liquidity_by_asset(
                    g[:, :, 0],
                    g[:, :, 2],
                    state.liquidity,
                    state.price,
                    daily_vol,
                    liquidity.stress,
                    liquidity.adv_half_spread,
                    liquidity.impact_coefficient,
                ).sum()
            )
        else:
            subtotal += _books_liquidity_numpy(books, state, daily_vol, params)
    if books is not None and params.basis.enabled:
        subtotal += float(basis_numpy(books, state.price, params.basis.rate, params.basis.vega_contingency).sum())
    conc = params.concentration
    notional = exposure(g[:, :, 0], state.price)
    if conc.enabled and conc.form == "simm":
        threshold = np.where(notional >= 0.0, long_threshold[np.newaxis], short_threshold[np.newaxis])
        subtotal += float(simm_add_on(notional, np.array([market]), threshold, state.vol).sum())
    elif conc.enabled:
        oi = np.zeros(len(state.assets)) if open_interest is None else open_interest
        subtotal += float(
            ramp_add_on(
                notional, conc.ramp_base_imf, conc.ramp_lower_cap, conc.ramp_upper_cap, conc.ramp_driver, oi
            ).sum()
        )
    if state.has_oracle:
        subtotal += float(oracle_buffer_numpy(g, state.oracle_uncertainty, params.oracle.buffer_factor).sum())
    if state.stable_price.size:
        delta = greeks[:, 0] if held is None else greeks[:, 0] + held
        return tier * subtotal + float(stable_price_charge(delta, state.price, state.stable_price).sum())
    return tier * subtotal


def _books_liquidity_numpy(books: FloatArray, state: MarketState, daily_vol: FloatArray, params: MarginParams) -> float:
    """The per-book close-out of books (A, B, 2) by the numpy cost functions: the longs of every book sold into the
    bid, the shorts bought from the ask, the gross vega (docs/model.md, "Liquidity add-on")."""
    liquidity = params.liquidity
    long_q, short_q, long_v, short_v = book_sides(books)
    total = 0.0
    for a, asset in enumerate(state.liquidity):
        price = float(state.price[a])
        if asset.bid is not None and asset.ask is not None:
            total += float(walk_cost(long_q[a : a + 1], asset.bid, price, liquidity.stress)[0])
            total += float(walk_cost(short_q[a : a + 1], asset.ask, price, liquidity.stress)[0])
        elif math.isfinite(asset.adv):
            for side in (long_q[a], short_q[a]):
                total += float(
                    sqrt_impact_cost(
                        np.array([side]),
                        price,
                        float(daily_vol[a]),
                        asset.adv,
                        liquidity.adv_half_spread,
                        liquidity.impact_coefficient,
                        liquidity.stress,
                    )[0]
                )
        if math.isfinite(asset.vol_spread):
            total += float(vega_cost(np.array([long_v[a] + short_v[a]]), asset.vol_spread, liquidity.stress)[0])
    return total
