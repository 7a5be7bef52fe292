"""The Python API for notebooks and services: load, compute, get arrays or a DataFrame back.

book = solvent.load_portfolio("examples/portfolio.json")
market = solvent.load_market("examples/market.json")
result = solvent.compute_margin(book, market)
result.to_pandas()
solvent.api.explain_margin(book, market, "carol").positions  # which positions drive its market risk
"""

from __future__ import annotations

from solvent.engine.attribution import Attribution, attribute_margin
from solvent.engine.book import Book
from solvent.engine.margin import margin_book
from solvent.engine.results import MarginResult
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
    """Each position's contribution to `account_id`'s market-risk term (Euler allocation; they sum to it).

    An unknown account raises InputError naming it.
    """
    params = MarginParams() if params is None else params
    state = build_market_state(list(book.instruments), market, params, portfolio_source, market_source)
    (attribution,) = attribute_margin(book, state, params, [account_id], history, portfolio_source)
    return attribution
