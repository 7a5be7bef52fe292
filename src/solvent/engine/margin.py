"""Margin assembly: equity, the IM terms, MM, health and liquidation flags for every account.

IM is the sum of named terms, each reported: `market_risk`, `apc_buffer` when the anti-procyclicality
tool is the buffer, and `liquidity` (close-out cost, also kept per asset in `term_by_asset`) when
enabled. The factors of later issues (concentration, oracle) join as further terms here and nowhere else.
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
from solvent.factors.liquidity import liquidity_by_asset
from solvent.market.history import PriceHistory
from solvent.market.state import MarketState
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]


def collateral_value(book: Book, state: MarketState, source: str = "<portfolio>") -> FloatArray:
    """(N,) collateral at market prices (no haircut yet); every collateral asset must be quoted."""
    index = state.asset_index
    missing = [a for a in book.collateral_assets if a not in index]
    if missing:
        code = book.collateral_assets.index(missing[0])
        row = int(np.flatnonzero(book.col_asset == code)[0])
        account = int(np.searchsorted(book.col_offsets, row, side="right") - 1)
        raise InputError(source, f"accounts[{account}].collateral.{missing[0]}", "asset is not in the market")
    prices = state.price[np.array([index[a] for a in book.collateral_assets], dtype=np.int64)]
    values = book.col_amount * prices[book.col_asset] if book.col_asset.size else np.zeros(0)
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
    im = np.zeros(book.n_accounts)
    for term in terms.values():
        im = im + term
    maintenance = params.maintenance
    if maintenance.mode == "fraction":
        mm = maintenance.fraction * im
    else:
        mm_params = structs.replace(params, confidence=maintenance.confidence, mpor_days=maintenance.mpor_days)
        _, mm_arrays = scenario_risk_arrays(state, mm_params, history)
        mm_market, _ = margins(
            book.pos_offsets, book.pos_instrument, book.pos_quantity, mm_arrays, mm_params.confidence, params.measure
        )
        mm = np.minimum(mm_market + terms.get("liquidity", 0.0), im)
    collateral = collateral_value(book, state, source)
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
    )
