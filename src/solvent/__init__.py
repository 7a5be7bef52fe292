"""solvent: a multi-factor margin engine for derivatives venues.

The public surface, for notebooks and services (pinned by tests/test_public_api.py):

    book = solvent.load_portfolio("examples/portfolio.json")
    market = solvent.load_market("examples/market.json")
    result = solvent.compute_margin(book, market, solvent.MarginParams())
    result.to_pandas()
    engine = solvent.StreamEngine.start(book, market)       # the streaming engine: feed it, ask what_if
    decision = engine.what_if("carol", "BTC-PERP", 0.5, 95_000.0)

Names load lazily (PEP 562): `import solvent` costs nothing until a name is used, so `solvent --help` and a
script that needs one reader do not import numba, scipy or the streaming engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from solvent.api import baseline_margin_for, compute_margin, explain_margin
    from solvent.convert.inputs import load_params, load_portfolio, portfolio_to_book
    from solvent.convert.tables import book_from_tables
    from solvent.engine.book import Book
    from solvent.engine.results import MarginResult
    from solvent.errors import InputError, ModelError, SolventError
    from solvent.formats.io import load_market, write_portfolio_parquet
    from solvent.formats.schemas import Account, AssetQuote, Instrument, MarketSnapshot, Portfolio, Position, VolSurface
    from solvent.market.history import PriceHistory, read_history, write_history
    from solvent.market.synthetic import synthetic_history
    from solvent.market.volatility import calibrate_asset_vols
    from solvent.params import MarginParams
    from solvent.pricing import Greeks, black76_greeks, black76_price
    from solvent.stream.engine import StreamEngine

#: Each public name and the module that defines it.
_WHERE = {
    "compute_margin": "solvent.api",
    "explain_margin": "solvent.api",
    "baseline_margin_for": "solvent.api",
    "load_params": "solvent.convert.inputs",
    "load_portfolio": "solvent.convert.inputs",
    "portfolio_to_book": "solvent.convert.inputs",
    "book_from_tables": "solvent.convert.tables",
    "Book": "solvent.engine.book",
    "MarginResult": "solvent.engine.results",
    "InputError": "solvent.errors",
    "ModelError": "solvent.errors",
    "SolventError": "solvent.errors",
    "load_market": "solvent.formats.io",
    "write_portfolio_parquet": "solvent.formats.io",
    "Account": "solvent.formats.schemas",
    "AssetQuote": "solvent.formats.schemas",
    "Instrument": "solvent.formats.schemas",
    "MarketSnapshot": "solvent.formats.schemas",
    "Portfolio": "solvent.formats.schemas",
    "Position": "solvent.formats.schemas",
    "VolSurface": "solvent.formats.schemas",
    "PriceHistory": "solvent.market.history",
    "read_history": "solvent.market.history",
    "write_history": "solvent.market.history",
    "synthetic_history": "solvent.market.synthetic",
    "calibrate_asset_vols": "solvent.market.volatility",
    "MarginParams": "solvent.params",
    "Greeks": "solvent.pricing",
    "black76_greeks": "solvent.pricing",
    "black76_price": "solvent.pricing",
    "StreamEngine": "solvent.stream.engine",
}

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
    "baseline_margin_for",
    "black76_greeks",
    "black76_price",
    "book_from_tables",
    "calibrate_asset_vols",
    "compute_margin",
    "explain_margin",
    "load_market",
    "load_params",
    "load_portfolio",
    "portfolio_to_book",
    "read_history",
    "synthetic_history",
    "write_history",
    "write_portfolio_parquet",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'solvent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
