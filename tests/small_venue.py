"""A small venue shared by tests: BTC/ETH spot, perpetuals, a future and three options, 30 days out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot

NOW = datetime(2026, 11, 25, tzinfo=UTC)
EXPIRY = NOW + timedelta(days=30)
INSTRUMENTS = [
    Instrument(id="BTC-SPOT", kind="spot", underlying="BTC"),
    Instrument(id="BTC-PERP", kind="perp", underlying="BTC"),
    Instrument(id="BTC-FUT", kind="future", underlying="BTC", expiry=EXPIRY),
    Instrument(id="ETH-PERP", kind="perp", underlying="ETH"),
    Instrument(id="BTC-C", kind="option", underlying="BTC", expiry=EXPIRY, strike=100_000, option_type="call"),
    Instrument(id="BTC-P", kind="option", underlying="BTC", expiry=EXPIRY, strike=90_000, option_type="put"),
    Instrument(id="ETH-C", kind="option", underlying="ETH", expiry=EXPIRY, strike=3_500, option_type="call"),
]
LINEAR = {"BTC-SPOT", "BTC-PERP", "BTC-FUT", "ETH-PERP"}

#: A plain market for the small venue: one price per asset, no depth or oracle sources.
MARKET = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={
        "BTC": AssetQuote(price=95_000, vol=0.5),
        "ETH": AssetQuote(price=3_400, vol=0.7),
        "USDC": AssetQuote(price=1.0, vol=0.0),
    },
)
