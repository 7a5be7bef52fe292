"""The health screen on assets priced from oracle sources: each source's quote moves the aggregated price, its
uncertainty U and the stable price S together, and a screened stream still publishes the same events as an
unscreened one, byte for byte (the bands on U and S, `stream.screen`'s module docstring).

The twin is the same stream without the screen (every exposed account re-margined at every quote). The paths are
the service's ticks: one source quotes one asset per batch, each source with its own noise, now and then a bad
print (an outlier the aggregation rejects), a jump, a silence long enough for every source to go stale, and a
crash or a rally underneath, so that U widens and narrows, S lags the price and accounts cross every threshold.
"""

from __future__ import annotations

import math
from datetime import timedelta

import msgspec
import numpy as np
import pytest
from crash_paths import ASSETS, PRICES, START, venue
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.demo.run import DEMO_SEED, ORACLE_SOURCES, demo_history, demo_market, demo_params
from solvent.demo.venue import synthetic_book, venue_instruments
from solvent.engine.book import Book
from solvent.formats.schemas import MarketSnapshot, OracleSource
from solvent.params import MarginParams, OracleParams
from solvent.stream import events as ev
from solvent.stream.engine import StreamEngine
from solvent.stream.feed import FeedRecord, Quote

SOURCES = ("pyth", "chainlink", "binance", "coinbase", "okx")


def sourced_venue(n: int, seed: int) -> tuple[Book, MarketSnapshot]:
    """crash_paths' venue, its assets priced from five oracle sources each (slightly dispersed)."""
    book, market = venue(n, seed)
    rng = np.random.default_rng(seed)
    assets = {}
    for name, quote in market.assets.items():
        noise = rng.normal(0.0, 5e-4, len(SOURCES))
        sources = [
            OracleSource(name=s, price=quote.price * (1.0 + float(d)), confidence=quote.price * 2e-4, timestamp=START)
            for s, d in zip(SOURCES, noise, strict=True)
        ]
        assets[name] = msgspec.structs.replace(quote, sources=sources)
    return book, msgspec.structs.replace(market, assets=assets)


def source_ticks(seconds: int, seed: int, crash: float) -> list[list[FeedRecord]]:
    """One batch per quote, two a second: a source (in turn) quotes an asset (in turn) at the path's price times
    its own noise; 1% of quotes a bad print (x1.5 or x0.6), 1% of seconds a 2% jump, and one silence of 70 s."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(math.log(1.0 + crash) / seconds, 0.0005, (seconds, len(ASSETS)))
    steps += np.where(rng.random((seconds, len(ASSETS))) < 0.01, rng.normal(0.0, 0.02, (seconds, len(ASSETS))), 0.0)
    prices = np.asarray(PRICES) * np.exp(np.cumsum(steps, axis=0))
    silence = int(rng.integers(seconds // 4, seconds // 2))
    batches: list[list[FeedRecord]] = []
    seq = 0
    for t in range(seconds):
        gap = 70 if t >= silence else 0
        for half in range(2):
            when = START + timedelta(seconds=t + gap + 1, milliseconds=500 * half)
            j = (t + half) % len(ASSETS)
            price = float(prices[t, j]) * (1.0 + float(rng.normal(0.0, 8e-4)))
            if rng.random() < 0.01:
                price *= float(rng.choice([1.5, 0.6]))
            source = SOURCES[(2 * t + half) % len(SOURCES)]
            confidence = float(prices[t, j]) * float(rng.uniform(1e-4, 1e-3))
            batches.append(
                [Quote(seq=seq, time=when, asset=ASSETS[j], price=price, source=source, confidence=confidence)]
            )
            seq += 1
    return batches


def replay(
    screen: bool, n: int, seed: int, crash: float, seconds: int, params: MarginParams, model: str = "multi"
) -> tuple[list[bytes], StreamEngine]:
    book, market = sourced_venue(n, seed)
    published: list[ev.Event] = []
    engine = StreamEngine.start(
        book, market, params, insurance_fund=50_000.0, sink=published.extend, model=model, screen=screen
    )
    for batch in source_ticks(seconds, seed + 1, crash):
        engine.run_batch(batch)
    return [msgspec.json.encode(e) for e in published], engine


@pytest.mark.parametrize("crash", [-0.25, 0.2])
def test_screened_events_equal_unscreened_under_source_quotes(crash: float) -> None:
    params = MarginParams()
    plain, reference = replay(False, 400, 3, crash, 300, params)
    screened, engine = replay(True, 400, 3, crash, 300, params)
    seen = b"".join(plain)
    for kind in (b"MarginCallIssued", b"AccountBecameLiquidatable", b"AccountRecovered", b"LiquidationsPaused"):
        assert kind in seen, kind  # the path goes through status changes and a stale oracle
    assert screened == plain
    assert engine.totals.remargined < 0.5 * reference.totals.remargined  # the screen did screen
    engine.monitor.freshen(engine.pricing, engine.last_time, -1, engine.journal, engine.totals)
    for name in ("im", "mm", "equity", "status", "flagged", "in_liquidation"):
        assert np.array_equal(getattr(engine.figures, name), getattr(reference.figures, name)), name


def test_the_screen_bands_the_uncertainty_and_the_stable_price() -> None:
    """Screened accounts on a sourced asset carry finite bands on U and S around the values they were margined at
    (their IM moves with both), and a stream whose only move is U is re-margined for the accounts whose U band it
    leaves, not for the others."""
    book, market = sourced_venue(300, 7)
    engine = StreamEngine.start(book, market, MarginParams(), screen=True)
    screen = engine.screen
    assert screen is not None
    screened = screen.asset >= 0
    assert screened.sum() > 100
    state = engine.market.state
    u = state.oracle_uncertainty[screen.asset[screened]]
    s = state.stable_price[screen.asset[screened]]
    assert np.all(np.isfinite(screen.oracle_low[screened]) & np.isfinite(screen.oracle_high[screened]))
    assert np.all((screen.oracle_low[screened] < u) & (u < screen.oracle_high[screened]))
    assert np.all((screen.stable_low[screened] < s) & (s < screen.stable_high[screened]))


@pytest.mark.parametrize("model", ["dydx", "static"])
def test_screened_events_equal_unscreened_under_source_quotes_for_venue_rules(model: str) -> None:
    params = MarginParams()
    assert replay(True, 200, 11, -0.3, 200, params, model)[0] == replay(False, 200, 11, -0.3, 200, params, model)[0]


def test_under_the_scan_charge_sourced_accounts_stay_hot_and_events_agree() -> None:
    """The uncertainty widening every scenario ("scan") has no bound here: the screen stands aside for the sourced
    assets' accounts, and the events are those of the unscreened stream."""
    params = MarginParams(oracle=OracleParams(uncertainty_charge="scan"))
    screened, engine = replay(True, 200, 5, -0.25, 150, params)
    assert engine.screen is not None and not (engine.screen.asset >= 0).any()
    assert screened == replay(False, 200, 5, -0.25, 150, params)[0]


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), crash=st.floats(-0.4, 0.3), buffer=st.sampled_from([0.0, 1.0, 5.0]))
def test_screened_events_equal_unscreened_on_random_source_paths(seed: int, crash: float, buffer: float) -> None:
    params = MarginParams(oracle=OracleParams(buffer_multiplier=buffer))
    assert replay(True, 120, seed, crash, 100, params)[0] == replay(False, 120, seed, crash, 100, params)[0]


def test_screened_events_equal_unscreened_on_the_demo_venue_when_its_collateral_moves() -> None:
    """The demo venue: options, market makers, USDC collateral (itself priced from sources), BTC or ETH coin on a
    fifth of the accounts. Accounts holding collateral other than USD are screened on their positions' asset and
    re-margined whenever their collateral's price moves: ticks of BTC, ETH and USDC (a depeg and back) give the
    same events and, once freshened, the same figures as without the screen."""
    history = demo_history(DEMO_SEED)
    params = demo_params()
    market = demo_market(history, params, DEMO_SEED)
    prices = {name: quote.price for name, quote in market.assets.items()}
    book = synthetic_book(venue_instruments(market.time, prices), prices, 300, DEMO_SEED)
    rng = np.random.default_rng(9)
    records: list[FeedRecord] = []
    level = dict(prices)
    for k in range(150):
        asset = ("BTC", "ETH", "USDC")[k % 3]
        level[asset] *= float(np.exp(rng.normal(0.0, 0.003 if asset == "USDC" else 0.004)))
        when = market.time + timedelta(milliseconds=100 * (k + 1))
        records.append(Quote(seq=k, time=when, asset=asset, price=level[asset], source=ORACLE_SOURCES[k % 5]))
    runs = []
    for screen in (False, True):
        published: list[ev.Event] = []
        engine = StreamEngine.start(book, market, params, history=history, sink=published.extend, screen=screen)
        for record in records:
            engine.run_batch([record])
        work = engine.totals.remargined
        engine.monitor.freshen(engine.pricing, engine.last_time, -1, engine.journal, engine.totals)
        runs.append(([msgspec.json.encode(e) for e in published], engine, work))
    (plain, reference, full_work), (screened, engine, screened_work) = runs
    assert screened == plain
    assert engine.screen is not None and (engine.screen.collateral[engine.screen.asset >= 0] >= 0).any()
    assert screened_work < full_work
    for name in ("im", "mm", "equity", "status", "flagged", "in_liquidation"):
        assert np.array_equal(getattr(engine.figures, name), getattr(reference.figures, name)), name
