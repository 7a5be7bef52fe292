"""Shared by the streaming tests that drive an engine through a fast crash: a two-asset venue of single-perpetual
traders and a one-second price path with jumps and depth changes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from solvent.engine.book import Book
from solvent.formats.schemas import MarketSnapshot
from solvent.lab.cascade import PopulationSpec, market_for, population
from solvent.stream.feed import DepthChange, FeedRecord, Quote

START = datetime(2026, 1, 1, tzinfo=UTC)
ASSETS = ("BTC", "ETH")
PRICES = (60_000.0, 3_000.0)


def venue(n: int, seed: int, leverage_median: float = 10.0) -> tuple[Book, MarketSnapshot]:
    """n seeded traders (`cascade.population`) and a snapshot quoting BTC and ETH directly."""
    book = population(ASSETS, PRICES, PopulationSpec(n_accounts=n, leverage_median=leverage_median), seed)
    return book, market_for(ASSETS, PRICES, (0.6, 0.7), (None, None), START)


def crash_path(seconds: int, seed: int, crash: float) -> list[list[FeedRecord]]:
    """One batch per second: a quote per asset (a drift to `crash` over the path, noise and a few jumps), and
    now and then a depth change."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(math.log(1.0 + crash) / seconds, 0.0005, (seconds, len(ASSETS)))
    steps += np.where(rng.random((seconds, len(ASSETS))) < 0.01, rng.normal(0.0, 0.02, (seconds, len(ASSETS))), 0.0)
    prices = np.asarray(PRICES) * np.exp(np.cumsum(steps, axis=0))
    batches: list[list[FeedRecord]] = []
    seq = 0
    for t in range(seconds):
        when = START + timedelta(seconds=t + 1)
        batch: list[FeedRecord] = []
        for j, asset in enumerate(ASSETS):
            batch.append(Quote(seq=seq, time=when, asset=asset, price=float(prices[t, j])))
            seq += 1
        if t % 37 == 36:
            batch.append(DepthChange(seq=seq, time=when, asset="BTC", scale=float(rng.uniform(0.3, 1.0))))
            seq += 1
        batches.append(batch)
    return batches
