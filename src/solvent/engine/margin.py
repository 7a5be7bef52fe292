"""Margin assembly: equity, the IM terms, MM, health and liquidation flags for every account.

IM is the sum of named terms, each reported: `market_risk`, `apc_buffer` when the anti-procyclicality
tool is the buffer, and `liquidity` (close-out cost per book, also kept per asset in `term_by_asset`) when
enabled, `basis` (the basis and calendar contingency on offsetting books, per asset) when enabled,
`concentration` (also per asset) when enabled, `oracle` (c * |net delta| * U, also per asset; 0 under
`oracle.uncertainty_charge` "scan") when the market carries oracle sources, `risk_tier`, (tier - 1) x the sum
of the others, so that IM = tier x that sum, and last `stable_price` (also per asset) when the market carries a
stable price: the gap between the oracle and the stable price on each net long (short) holding, a valuation
limit on borrowing power, not a risk, so neither scaled by the tier nor part of MM. Every term declared in
`IM_TERMS` (formats/outputs.py) is reported, 0 where it does not apply. The factors of later issues join as
further terms here and nowhere else, before `risk_tier`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from msgspec import structs
from numpy.typing import NDArray

from solvent._blas import one_blas_thread
from solvent.engine.book import Book
from solvent.engine.equity import (
    book_haircuts,
    collateral_columns,
    collateral_value,
    integrated_deltas,
    position_value,
)
from solvent.engine.kernel import held_margins
from solvent.engine.results import MarginResult, complete_held_terms, complete_terms
from solvent.engine.riskarrays import RiskArrays, scenario_risk_arrays
from solvent.factors.basis import book_layout, book_terms_kernel
from solvent.factors.concentration import (
    open_interest_of,
    ramp_add_on,
    risk_tier_term,
    side_thresholds,
    simm_and_hhi,
    stressed_depth,
    tier_multiplier,
)
from solvent.factors.held import HeldAssets, held_assets
from solvent.factors.liquidity import liquidity_kernel, packed_liquidity
from solvent.factors.oracle_buffer import oracle_buffer_by_asset
from solvent.liquidation.horizon import liquidation_maintenance
from solvent.liquidation.predictive import book_breach, scenario_correlation
from solvent.market.history import PriceHistory
from solvent.market.stable_price import stable_price_charge
from solvent.market.state import QUOTE_ASSETS, MarketState
from solvent.params import MarginParams
from solvent.scenarios.base import ScenarioSet

FloatArray = NDArray[np.float64]

LOG = logging.getLogger(__name__)


def held_rows(
    book: Book, state: MarketState, params: MarginParams, instrument_asset: NDArray[np.int32], source: str
) -> HeldAssets:
    """The (account, asset) rows the per-asset figures are kept on: the assets of each account's positions and,
    where its balances enter a per-asset figure (the stable price, the integrated collateral mode), of its
    collateral."""
    n_assets = len(state.assets)
    pos_asset = instrument_asset[book.pos_instrument]
    if not state.stable_price.size and params.collateral.mode != "integrated":
        return held_assets(book.pos_offsets, pos_asset, n_assets)
    columns = collateral_columns(book, state, source)
    return held_assets(book.pos_offsets, pos_asset, n_assets, book.col_offsets, columns[book.col_asset])


def liquidity_add_on(greeks: FloatArray, state: MarketState, params: MarginParams, held: HeldAssets) -> FloatArray:
    """(H,) close-out cost of each held row's net delta and vega (greeks: (H, 3) on the rows of `held`)."""
    if not state.liquidity:
        return np.zeros(held.n_rows)
    liquidity = params.liquidity
    return liquidity_kernel(
        greeks,
        packed_liquidity(state.liquidity),
        state.price,
        state.vol / np.sqrt(params.days_per_year),
        liquidity.stress,
        liquidity.adv_half_spread,
        liquidity.impact_coefficient,
        held.asset,
    )


def book_add_ons(
    book: Book,
    arrays: RiskArrays,
    greeks: FloatArray,
    state: MarketState,
    params: MarginParams,
    collateral_delta: FloatArray | None,
    held: HeldAssets,
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """{"liquidity": ((H,) close-out per book on the rows of `held`, (N,) their sums), "basis": (the basis
    contingency, its sums)}, each present when enabled (factors/basis.py); greeks (H, 3).

    Where every asset's instruments sit in one book and no collateral counts as spot delta, no account holds
    two books of an asset: the basis is 0 and the per-book close-out is the net one (`liquidity_add_on` on
    the Greeks, the same figures to the bit); otherwise one compiled pass over the positions gives both.
    """
    liquidity_on = params.liquidity.enabled
    basis = params.basis
    out: dict[str, tuple[FloatArray, FloatArray]] = {}
    if not basis.enabled and not liquidity_on:
        return out
    layout = book_layout(state.instruments)
    if layout.single and collateral_delta is None:
        if liquidity_on:
            liquidity = liquidity_add_on(greeks, state, params, held)
            out["liquidity"] = (liquidity, held.row_sums(liquidity))
        if basis.enabled:
            out["basis"] = (np.zeros(held.n_rows), np.zeros(held.n_accounts))
        return out
    packed = packed_liquidity(state.liquidity) if liquidity_on and state.liquidity else None
    liquidity_params = params.liquidity
    by_book, contingency, totals = book_terms_kernel(
        book.pos_offsets,
        book.pos_instrument,
        book.pos_quantity,
        arrays.instrument_asset,
        arrays.unit_greeks,
        layout,
        collateral_delta,
        state.price,
        basis.rate if basis.enabled else 0.0,
        basis.vega_contingency if basis.enabled else 0.0,
        packed,
        state.vol / np.sqrt(params.days_per_year),
        liquidity_params.stress,
        liquidity_params.adv_half_spread,
        liquidity_params.impact_coefficient,
        held,
    )
    if liquidity_on:
        out["liquidity"] = (by_book, totals[0])
    if basis.enabled:
        out["basis"] = (contingency, totals[1])
    return out


def concentration_add_on(
    greeks: FloatArray, market_risk: FloatArray, state: MarketState, params: MarginParams, held: HeldAssets
) -> tuple[FloatArray | None, FloatArray]:
    """((H,) concentration add-on on the rows of `held`, or None when disabled; (N,) HHI) from the Greeks (H, 3)."""
    conc = params.concentration
    delta = np.ascontiguousarray(greeks[:, 0])
    n_assets = state.price.shape[0]
    needs_oi = conc.enabled and (conc.oi_share is not None or (conc.form == "ramp" and conc.ramp_driver != "account"))
    oi = open_interest_of(delta, state.price, held) if needs_oi else np.zeros(n_assets)
    bid: FloatArray | None = None
    ask: FloatArray | None = None
    if conc.enabled and conc.form == "simm" and state.liquidity and conc.depth_share is not None:
        bid, ask = stressed_depth(state.liquidity, state.price, conc.depth_distance, params.liquidity.stress)
    if conc.enabled and conc.form == "simm":
        long_t, short_t = side_thresholds(
            n_assets, conc.threshold, oi, conc.oi_share, bid, ask, conc.depth_share, conc.relative_floor
        )
    else:  # infinite thresholds: the kernel computes the HHI alone
        long_t = short_t = np.full(n_assets, np.inf)
    add_on, hhi = simm_and_hhi(delta, state.price, market_risk, long_t, short_t, state.vol, held)  # split by own risk
    if not conc.enabled:
        return None, hhi
    if conc.form == "ramp":
        notional = delta * state.price[held.asset]  # `exposure` on the held rows
        add_on = ramp_add_on(
            notional, conc.ramp_base_imf, conc.ramp_lower_cap, conc.ramp_upper_cap, conc.ramp_driver, oi, held.asset
        )
    return add_on, hhi


def oracle_buffer(greeks: FloatArray, state: MarketState, params: MarginParams, held: HeldAssets) -> FloatArray:
    """(H,) oracle buffer on the rows of `held`: c * |net delta_a| * U_a (greeks: (H, 3); delta in units, U in
    USD); c = 0 under `oracle.uncertainty_charge` "scan", where the scenarios carry the uncertainty instead."""
    uncertainty = state.oracle_uncertainty[held.asset]
    return oracle_buffer_by_asset(greeks[:, 0], uncertainty, params.oracle.buffer_factor)


def stable_price_add_on(
    book: Book, greeks: FloatArray, state: MarketState, params: MarginParams, source: str, held: HeldAssets
) -> FloatArray:
    """(H,) the `stable_price` term on the rows of `held` (greeks (H, 3)): each asset's net delta, collateral
    balances counted as long (already in the Greeks in the integrated collateral mode), times the gap between
    the oracle and the stable price on the side that would raise borrowing power (`stable_price_charge`)."""
    delta = greeks[:, 0]
    if params.collateral.mode != "integrated":
        delta = delta + held_collateral_deltas(book, state, collateral_columns(book, state, source), held)
    return stable_price_charge(delta, state.price[held.asset], state.stable_price[held.asset])


def held_collateral_deltas(book: Book, state: MarketState, columns: NDArray[np.int64], held: HeldAssets) -> FloatArray:
    """(H,) `collateral_deltas` on the rows of `held` (each balance's asset among its account's rows): every
    account's non-USD balances as spot deltas, each row's balances added in their order, as the dense sum adds."""
    col = columns[book.col_asset]
    moves = np.array([a not in QUOTE_ASSETS for a in state.assets], dtype=np.bool_)[col]
    rows = held.rows_of(book.collateral_account(), col)
    weights = np.where(moves, book.col_amount, 0.0)
    out: FloatArray = np.bincount(rows, weights=weights, minlength=held.n_rows).astype(np.float64)
    return out


@dataclass(frozen=True, eq=False)
class RiskContext:
    """The scenarios and risk arrays a margin run reads: built once per market state, shared by every
    account (the streaming engine keeps one and refreshes the rows of the assets that move).

    correlation (A, A): the asset-return correlation of the breach probability (`scenario_correlation`).
    mm_arrays: the maintenance run's arrays when `maintenance.mode` is "model" (its own confidence and
    MPOR), else None.
    """

    scenarios: ScenarioSet
    arrays: RiskArrays
    correlation: FloatArray
    mm_scenarios: ScenarioSet | None = None
    mm_arrays: RiskArrays | None = None


def risk_context(state: MarketState, params: MarginParams, history: PriceHistory | None = None) -> RiskContext:
    """Scenarios and risk arrays for IM (and for MM in the "model" maintenance mode) at `state`; their BLAS products
    (the Monte Carlo's draws, the scenario correlation) on one thread (`one_blas_thread`: the same figures)."""
    with one_blas_thread():
        scenarios, arrays = scenario_risk_arrays(state, params, history)
        correlation = scenario_correlation(scenarios, params.predictive)
        if params.maintenance.mode != "model":
            return RiskContext(scenarios, arrays, correlation)
        mm_scenarios, mm_arrays = scenario_risk_arrays(state, maintenance_params(params), history)
    return RiskContext(scenarios, arrays, correlation, mm_scenarios, mm_arrays)


def maintenance_params(params: MarginParams) -> MarginParams:
    """The parameters of the maintenance run in the "model" mode: its own confidence and MPOR."""
    maintenance = params.maintenance
    return structs.replace(params, confidence=maintenance.confidence, mpor_days=maintenance.mpor_days)


def account_equity(
    book: Book, state: MarketState, params: MarginParams, context: RiskContext, source: str = "<portfolio>"
) -> FloatArray:
    """(N,) the equity `margin_accounts` reports, bit for bit, at a fraction of its cost where no collateral
    haircut applies (mode "none": collateral + unrealised P&L, no risk kernel); for callers needing equity alone,
    such as the streaming engine's liquidation sizer."""
    if params.collateral.mode != "none":  # the haircuts need the book's Greeks
        return margin_accounts(book, state, params, context, source, predictive=False).equity
    collateral, unrealised = _equity_parts(book, state, params, context, source)
    equity: FloatArray = collateral + unrealised
    return equity


def _equity_parts(
    book: Book, state: MarketState, params: MarginParams, context: RiskContext, source: str
) -> tuple[FloatArray, FloatArray]:
    """(collateral at market prices, unrealised P&L) per account: equity before haircuts."""
    collateral = collateral_value(book, state, source, params.oracle.pessimistic_k)
    return collateral, position_value(book, state, context.arrays.value, params.venues.remote_pnl_haircut)


def margin_book(
    book: Book,
    state: MarketState,
    params: MarginParams,
    history: PriceHistory | None = None,
    source: str = "<portfolio>",
) -> MarginResult:
    """Margin every account of `book` at `state` under `params`."""
    begin = time.perf_counter()
    context = risk_context(state, params, history)
    result = margin_accounts(book, state, params, context, source)
    LOG.debug(
        "margined %d accounts of %s on %d %s scenarios in %.3f s",
        book.n_accounts,
        source,
        context.scenarios.n_scenarios,
        context.scenarios.name,
        time.perf_counter() - begin,
    )
    return result


def margin_accounts(
    book: Book,
    state: MarketState,
    params: MarginParams,
    context: RiskContext,
    source: str = "<portfolio>",
    *,
    vol: FloatArray | None = None,
    velocity: FloatArray | None = None,
    predictive: bool = True,
) -> MarginResult:
    """Margin every account of `book` on prepared scenarios and risk arrays (`risk_context`).

    `vol` (A,) and `velocity` (A,), optional, feed the breach probability: the volatility of the assets'
    returns (default `state.vol`; the streaming engine passes the larger of it and the fast volatility) and
    their price velocity (default none: no drift). `predictive=False` skips the breach probability (about half
    the cost of a call on a small book): `breach_probability`, `early_flag` and `loss_vol` are then None and
    every other figure is the same to the bit -- for callers that only need IM, such as the liquidation
    sizer's requirement (`plan_closeout`).
    """
    arrays = context.arrays
    collateral_delta = integrated_deltas(book, state, params, source)  # None unless collateral.mode "integrated"
    held = held_rows(book, state, params, arrays.instrument_asset, source)
    market_risk, greeks = held_margins(
        book.pos_offsets,
        book.pos_instrument,
        book.pos_quantity,
        arrays,
        params.confidence,
        params.measure,
        held,
        extra_delta=collateral_delta,
    )
    terms: dict[str, FloatArray] = {"market_risk": market_risk}
    held_terms: dict[str, FloatArray] = {}
    if params.volatility.apc_mode == "buffer":
        terms["apc_buffer"] = params.volatility.apc_buffer * market_risk
    for name, (by_asset, total) in book_add_ons(book, arrays, greeks, state, params, collateral_delta, held).items():
        held_terms[name] = by_asset
        terms[name] = total
    concentration, hhi = concentration_add_on(greeks, market_risk, state, params, held)
    if concentration is not None:
        held_terms["concentration"] = concentration
        terms["concentration"] = held.row_sums(concentration)
    if state.has_oracle:
        held_terms["oracle"] = oracle_buffer(greeks, state, params, held)
        terms["oracle"] = held.row_sums(held_terms["oracle"])
    subtotal = np.zeros(book.n_accounts)
    for term in terms.values():
        subtotal = subtotal + term
    # The risk tier scales every other term, so it comes last: IM = tier x subtotal, and the terms sum to IM.
    tier = tier_multiplier(book.risk_tier)
    terms["risk_tier"] = risk_tier_term(tier, subtotal)
    im = subtotal + terms["risk_tier"]
    maintenance = params.maintenance
    if maintenance.mode == "fraction":
        mm = maintenance.fraction * im
    elif maintenance.mode == "liquidation":  # MM on the engine's own liquidation horizon (liquidation/horizon.py)
        mm = liquidation_maintenance(greeks, state, params, im, terms, tier, held)
    else:
        assert context.mm_arrays is not None, "risk_context builds the maintenance arrays in the model mode"
        mm_market, _ = held_margins(
            book.pos_offsets,
            book.pos_instrument,
            book.pos_quantity,
            context.mm_arrays,
            maintenance.confidence,
            params.measure,
            held,
            extra_delta=collateral_delta,
        )
        mm = np.minimum(
            tier * (mm_market + terms.get("liquidity", 0.0) + terms.get("basis", 0.0) + terms.get("oracle", 0.0)), im
        )
    if state.stable_price.size:  # after MM: maintenance and liquidation stay on the oracle
        held_terms["stable_price"] = stable_price_add_on(book, greeks, state, params, source, held)
        terms["stable_price"] = held.row_sums(held_terms["stable_price"])
        im = im + terms["stable_price"]
    collateral, unrealised = _equity_parts(book, state, params, context, source)
    equity = collateral + unrealised
    haircuts = book_haircuts(book, state, params, greeks, source, held)  # an equity deduction, not an IM term
    if haircuts is not None:
        equity = equity - haircuts.by_account
    breach = None
    if predictive:
        breach = book_breach(
            greeks,
            state.price,
            state.vol if vol is None else vol,
            context.correlation,
            equity,
            mm,
            params.predictive,
            velocity=velocity,
            held=held,
        )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a subnormal MM overflows to inf
        health = np.where(mm > 0.0, equity / np.where(mm > 0.0, mm, 1.0), np.where(equity >= 0.0, np.inf, -np.inf))
    return MarginResult(
        account_ids=book.account_ids,
        assets=state.assets,
        traded_assets=tuple(state.assets[a] for a in state.instruments.traded),
        terms=complete_terms(terms, book.n_accounts),
        held_terms=complete_held_terms(held_terms, held.n_rows),
        im=im,
        mm=mm,
        collateral=collateral,
        unrealised_pnl=unrealised,
        equity=equity,
        health=health,
        liquidatable=equity < mm,
        held=held,
        held_greeks=greeks,
        scenario_method=context.scenarios.name,
        n_scenarios=context.scenarios.n_scenarios,
        hhi=hhi,
        collateral_haircut=None if haircuts is None else haircuts.by_account,
        collateral_haircut_by_asset=None if haircuts is None else haircuts.by_asset,
        oracle_status=state.oracle_status_names,
        parent=book.parent,
        breach_probability=None if breach is None else breach[2],
        early_flag=None if breach is None else breach[3] & (mm > 0.0),  # a flat account cannot breach
        loss_vol=None if breach is None else breach[0],
        market=state,
    )
