"""The Python API for notebooks and services: load, compute, get arrays or a DataFrame back.

book = solvent.load_portfolio("examples/portfolio.json")
market = solvent.load_market("examples/market.json")
result = solvent.compute_margin(book, market)
result.to_pandas()
"""

from __future__ import annotations

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
