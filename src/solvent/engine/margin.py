"""Margin assembly: equity, the IM terms, MM, health and liquidation flags for every account.

IM is the sum of named terms, each reported: `market_risk`, `apc_buffer` when the anti-procyclicality
tool is the buffer, and `liquidity` (close-out cost, also kept per asset in `term_by_asset`) when
enabled, `concentration` (also per asset) when enabled, `oracle` (c * |net delta| * U, also per asset)
when the market carries oracle sources, and last `risk_tier`, (tier - 1) x the sum of the
others, so that IM = tier x that sum. The factors of later issues join as further terms here and nowhere
else, before `risk_tier`.
"""

from __future__ import annotations

import numpy as np
from msgspec import structs
from numpy.typing import NDArray

from solvent.engine.book import Book
from solvent.engine.kernel import margins
from solvent.engine.results import MarginResult
from solvent.engine.riskarrays import scenario_risk_arrays
from solvent.errors import InputError
from solvent.factors.concentration import (
    exposure,
    open_interest_of,
    ramp_add_on,
    risk_tier_term,
    side_thresholds,
    simm_and_hhi,
    stressed_depth,
    tier_multiplier,
)
from solvent.factors.liquidity import liquidity_by_asset
from solvent.market.history import PriceHistory
from solvent.market.oracle import pessimistic_prices
from solvent.market.state import MarketState
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]


def collateral_value(
    book: Book, state: MarketState, source: str = "<portfolio>", pessimistic_k: float = 0.0
) -> FloatArray:
    """(N,) collateral at market prices (no haircut yet); every collateral asset must be quoted.

    With `pessimistic_k` k > 0 and oracle sources, a balance is valued at max(P - kU, 0) and a debt
    (negative balance) at P + kU (`oracle.pessimistic_prices`).
    """
    index = state.asset_index
    missing = [a for a in book.collateral_assets if a not in index]
    if missing:
        code = book.collateral_assets.index(missing[0])
        row = int(np.flatnonzero(book.col_asset == code)[0])
        account = int(np.searchsorted(book.col_offsets, row, side="right") - 1)
        raise InputError(source, f"accounts[{account}].collateral.{missing[0]}", "asset is not in the market")
    columns = np.array([index[a] for a in book.collateral_assets], dtype=np.int64)
    prices = state.price[columns]
    values = book.col_amount * prices[book.col_asset] if book.col_asset.size else np.zeros(0)
    if pessimistic_k > 0.0 and state.has_oracle and book.col_asset.size:
        low, high = pessimistic_prices(prices, state.oracle_uncertainty[columns], pessimistic_k)
        values = book.col_amount * np.where(book.col_amount > 0.0, low[book.col_asset], high[book.col_asset])
    return np.bincount(book.collateral_account(), weights=values, minlength=book.n_accounts).astype(np.float64)


def position_value(book: Book, state: MarketState, unit_value: FloatArray) -> FloatArray:
    """(N,) unrealised P&L of linear positions (size x (forward - entry)) plus options' premium value."""
    inst = book.pos_instrument
    size = state.instruments.contract_size[inst]
    linear_pnl = np.where(np.isnan(book.pos_entry), 0.0, size * (state.forward[inst] - np.nan_to_num(book.pos_entry)))
    per_position = book.pos_quantity * linear_pnl + book.pos_quantity * unit_value[inst]
    return np.bincount(book.position_account(), weights=per_position, minlength=book.n_accounts).astype(np.float64)


def liquidity_add_on(greeks: FloatArray, state: MarketState, params: MarginParams) -> FloatArray:
    """(N, A) close-out cost of each account's net delta and vega per asset (greeks: (N, A, 3))."""
    n_accounts, n_assets = greeks.shape[0], greeks.shape[1]
    if not state.liquidity:
        return np.zeros((n_accounts, n_assets))
    liquidity = params.liquidity
    return liquidity_by_asset(
        greeks[:, :, 0],
        greeks[:, :, 2],
        state.liquidity,
        state.price,
        state.vol / np.sqrt(params.days_per_year),
        liquidity.stress,
        liquidity.adv_half_spread,
        liquidity.impact_coefficient,
    )


def concentration_add_on(
    greeks: FloatArray, market_risk: FloatArray, state: MarketState, params: MarginParams
) -> tuple[FloatArray | None, FloatArray]:
    """((N, A) concentration add-on, or None when disabled; (N,) HHI) from the Greeks (N, A, 3)."""
    conc = params.concentration
    delta = greeks[:, :, 0]
    n_assets = state.price.shape[0]
    needs_oi = conc.enabled and (conc.oi_share is not None or (conc.form == "ramp" and conc.ramp_driver != "account"))
    oi = open_interest_of(delta, state.price) if needs_oi else np.zeros(n_assets)
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
    add_on, hhi = simm_and_hhi(delta, state.price, market_risk, long_t, short_t)
    if not conc.enabled:
        return None, hhi
    if conc.form == "ramp":
        notional = exposure(delta, state.price)
        add_on = ramp_add_on(
            notional, conc.ramp_base_imf, conc.ramp_lower_cap, conc.ramp_upper_cap, conc.ramp_driver, oi
        )
    return add_on, hhi


def oracle_buffer(greeks: FloatArray, state: MarketState, params: MarginParams) -> FloatArray:
    """(N, A) oracle buffer: c * |net delta_a| * U_a (greeks: (N, A, 3); delta in units, U in USD)."""
    return np.asarray(
        params.oracle.buffer_multiplier * np.abs(greeks[:, :, 0]) * state.oracle_uncertainty[None, :],
        dtype=np.float64,
    )


def margin_book(
    book: Book,
    state: MarketState,
    params: MarginParams,
    history: PriceHistory | None = None,
    source: str = "<portfolio>",
) -> MarginResult:
    """Margin every account of `book` at `state` under `params`."""
    scenarios, arrays = scenario_risk_arrays(state, params, history)
    market_risk, greeks = margins(
        book.pos_offsets, book.pos_instrument, book.pos_quantity, arrays, params.confidence, params.measure
    )
    terms: dict[str, FloatArray] = {"market_risk": market_risk}
    term_by_asset: dict[str, FloatArray] = {}
    if params.volatility.apc_mode == "buffer":
        terms["apc_buffer"] = params.volatility.apc_buffer * market_risk
    if params.liquidity.enabled:
        term_by_asset["liquidity"] = liquidity_add_on(greeks, state, params)
        terms["liquidity"] = term_by_asset["liquidity"].sum(axis=1)
    concentration, hhi = concentration_add_on(greeks, market_risk, state, params)
    if concentration is not None:
        term_by_asset["concentration"] = concentration
        terms["concentration"] = concentration.sum(axis=1)
    if state.has_oracle:
        term_by_asset["oracle"] = oracle_buffer(greeks, state, params)
        terms["oracle"] = term_by_asset["oracle"].sum(axis=1)
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
    else:
        mm_params = structs.replace(params, confidence=maintenance.confidence, mpor_days=maintenance.mpor_days)
        _, mm_arrays = scenario_risk_arrays(state, mm_params, history)
        mm_market, _ = margins(
            book.pos_offsets, book.pos_instrument, book.pos_quantity, mm_arrays, mm_params.confidence, params.measure
        )
        mm = np.minimum(tier * (mm_market + terms.get("liquidity", 0.0) + terms.get("oracle", 0.0)), im)
    collateral = collateral_value(book, state, source, params.oracle.pessimistic_k)
    unrealised = position_value(book, state, arrays.value)
    equity = collateral + unrealised
    with np.errstate(divide="ignore", invalid="ignore"):
        health = np.where(mm > 0.0, equity / np.where(mm > 0.0, mm, 1.0), np.where(equity >= 0.0, np.inf, -np.inf))
    return MarginResult(
        account_ids=book.account_ids,
        assets=state.assets,
        traded_assets=tuple(state.assets[a] for a in np.unique(state.instruments.asset)),
        terms=terms,
        term_by_asset=term_by_asset,
        im=im,
        mm=mm,
        collateral=collateral,
        unrealised_pnl=unrealised,
        equity=equity,
        health=health,
        liquidatable=equity < mm,
        greeks=greeks,
        scenario_method=scenarios.name,
        n_scenarios=scenarios.n_scenarios,
        hhi=hhi,
        oracle_status=state.oracle_status_names,
    )
