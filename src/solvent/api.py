"""The Python API for notebooks and services: load, compute, get arrays or a DataFrame back.

book = solvent.load_portfolio("examples/portfolio.json")
market = solvent.load_market("examples/market.json")
result = solvent.compute_margin(book, market)
result.to_pandas()
solvent.api.explain_margin(book, market, "carol").positions  # which positions drive its market risk
solvent.api.baseline_margin_for(book, market, "dydx").im  # what dYdX's rule would ask of each account
"""

from __future__ import annotations

import dataclasses

import numpy as np

from solvent.baselines import BaselineParams
from solvent.baselines.book import BaselineResult, baseline_margin, option_unit_values
from solvent.engine.attribution import Attribution, attribute_margin
from solvent.engine.book import Book
from solvent.engine.margin import margin_book
from solvent.engine.results import MarginResult
from solvent.factors.haircuts import require_collateral_vols
from solvent.formats.schemas import MarketSnapshot
from solvent.market.history import PriceHistory
from solvent.market.state import build_market_state
from solvent.params import MarginParams


def compute_margin(
    book: Book,
    market: MarketSnapshot,
    params: MarginParams | None = None,
    history: PriceHistory | None = None,
    *,
    portfolio_source: str = "<portfolio>",
    market_source: str = "<market>",
) -> MarginResult:
    """IM, MM, equity, health, IM terms and Greeks for every account of `book` at `market`."""
    params = MarginParams() if params is None else params
    state = build_market_state(list(book.instruments), market, params, portfolio_source, market_source)
    require_collateral_vols(book, state, params, market_source)
    return margin_book(book, state, params, history, portfolio_source)


def explain_margin(
    book: Book,
    market: MarketSnapshot,
    account_id: str,
    params: MarginParams | None = None,
    history: PriceHistory | None = None,
    *,
    portfolio_source: str = "<portfolio>",
    market_source: str = "<market>",
) -> Attribution:
    """Each position's contribution to `account_id`'s market-risk term (Euler allocation; they sum to it),
    with every IM term of the account and each add-on's split by asset.

    An unknown account raises InputError naming it.
    """
    params = MarginParams() if params is None else params
    state = build_market_state(list(book.instruments), market, params, portfolio_source, market_source)
    (attribution,) = attribute_margin(book, state, params, [account_id], history, portfolio_source)
    result = margin_book(book, state, params, history, portfolio_source)
    row = int(np.flatnonzero(result.account_ids == account_id)[0])
    traded = [(state.asset_index[name], name) for name in result.traded_assets]
    return dataclasses.replace(
        attribution,
        terms={name: float(values[row]) for name, values in result.terms.items()},
        add_ons_by_asset={
            term: {name: float(values[row, a]) for a, name in traded} for term, values in result.term_by_asset.items()
        },
        marks={a.asset: result.marks[a.asset] for a in sorted(attribution.assets, key=lambda a: a.asset)},
    )


def baseline_margin_for(
    book: Book,
    market: MarketSnapshot,
    name: str,
    params: BaselineParams | None = None,
    margin_params: MarginParams | None = None,
    *,
    portfolio_source: str = "<portfolio>",
    market_source: str = "<market>",
) -> BaselineResult:
    """Every account's IM and MM under the venue rule `name` (static, dydx, synthetix, drift, deribit).

    The market state is built as `compute_margin` builds it (with `margin_params`, default MarginParams()),
    so both see the same prices, forwards and option marks. `params`: the rules' parameters (default
    BaselineParams()). Conventions: solvent.baselines.book. An unknown `name` raises ValueError.
    """
    margin_params = MarginParams() if margin_params is None else margin_params
    params = BaselineParams() if params is None else params
    state = build_market_state(list(book.instruments), market, margin_params, portfolio_source, market_source)
    time_floor = margin_params.volatility.time_floor_days / margin_params.days_per_year
    return baseline_margin(book, state, params, name, unit_value=option_unit_values(state, time_floor))
