"""solvent: a multi-factor margin engine for derivatives venues.

The public surface, for notebooks and services (pinned by tests/test_public_api.py):

    book = solvent.load_portfolio("examples/portfolio.json")
    market = solvent.load_market("examples/market.json")
    result = solvent.compute_margin(book, market, solvent.MarginParams())
    result.to_pandas()
    engine = solvent.StreamEngine.start(book, market)       # the streaming engine: feed it, ask what_if
    decision = engine.what_if("carol", "BTC-PERP", 0.5, 95_000.0)
"""

from solvent.api import compute_margin, explain_margin
from solvent.convert.inputs import load_params, load_portfolio
from solvent.engine.book import Book
from solvent.engine.results import MarginResult
from solvent.errors import InputError, ModelError, SolventError
from solvent.formats.io import load_market, write_portfolio_parquet
from solvent.formats.schemas import (
    Account,
    AssetQuote,
    Instrument,
    MarketSnapshot,
    Portfolio,
    Position,
    VolSurface,
)
from solvent.market.history import PriceHistory, read_history, write_history
from solvent.market.synthetic import synthetic_history
from solvent.market.volatility import calibrate_asset_vols
from solvent.params import MarginParams
from solvent.pricing import Greeks, black76_greeks, black76_price
from solvent.stream.engine import StreamEngine

__all__ = [
    "Account",
    "AssetQuote",
    "Book",
    "Greeks",
    "InputError",
    "Instrument",
    "MarginParams",
    "MarginResult",
    "MarketSnapshot",
    "ModelError",
    "Portfolio",
    "Position",
    "PriceHistory",
    "SolventError",
    "StreamEngine",
    "VolSurface",
    "black76_greeks",
    "black76_price",
    "calibrate_asset_vols",
    "compute_margin",
    "explain_margin",
    "load_market",
    "load_params",
    "load_portfolio",
    "read_history",
    "synthetic_history",
    "write_history",
    "write_portfolio_parquet",
]
