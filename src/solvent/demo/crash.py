"""A scripted crash for the streaming engine: one asset falls 40% within an hour while its book thins by half.

The path is a Brownian bridge around a log-linear fall, pinned at the start price and at (1 - drop) x it at
the end, with a per-second volatility `crash_vol` (annualised); each step every oracle source of the demo
market quotes the path price with its own small noise, and every `depth_every` seconds a depth record scales
the asset's book down linearly to `depth_floor` of the snapshot's. Seeded: the same arguments give the
same feed. `write_crash` writes a whole replayable case (accounts, market, parameters, history, feed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import msgspec
import numpy as np

from solvent.demo.defaults import DEMO_SEED
from solvent.demo.run import ORACLE_NOISE, demo_history, demo_market, demo_params
from solvent.demo.venue import synthetic_book, venue_instruments
from solvent.engine.book import book_to_arrow
from solvent.formats.io import atomic_output, write_portfolio_parquet
from solvent.formats.schemas import MarketSnapshot
from solvent.market.history import write_history
from solvent.stream.feed import DepthChange, FeedRecord, Quote
from solvent.stream.feedio import write_feed

SECONDS_PER_YEAR = 365.0 * 86400.0


@dataclass(frozen=True, kw_only=True)
class CrashScript:
    """The crash: `asset` falls by `drop` over `duration_s` seconds, quoted every `step_s` seconds, its
    book scaled down to `depth_floor` in steps every `depth_every` seconds."""

    asset: str = "BTC"
    drop: float = 0.40
    duration_s: float = 3600.0
    step_s: float = 1.0
    crash_vol: float = 1.0
    depth_floor: float = 0.5
    depth_every: float = 60.0
    seed: int = DEMO_SEED


def crash_path(script: CrashScript, start_price: float) -> tuple[np.ndarray, np.ndarray]:
    """(times in seconds from the start, prices) at every step, ending at exactly (1 - drop) x start."""
    n = round(script.duration_s / script.step_s)
    t = np.arange(n + 1) * script.step_s
    rng = np.random.default_rng(script.seed)
    sigma = script.crash_vol * math.sqrt(script.step_s / SECONDS_PER_YEAR)
    walk = np.concatenate(([0.0], np.cumsum(rng.normal(0.0, sigma, n))))
    bridge = walk - (t / t[-1]) * walk[-1]  # pinned to 0 at both ends
    log_price = math.log(start_price) + math.log(1.0 - script.drop) * (t / t[-1]) + bridge
    prices = np.exp(log_price)
    prices[-1] = start_price * (1.0 - script.drop)
    return t, prices


def crash_feed(market: MarketSnapshot, script: CrashScript) -> list[FeedRecord]:
    """The feed records of the crash, starting one step after the snapshot's time."""
    quote = market.assets[script.asset]
    sources = [source.name for source in quote.sources]
    times, prices = crash_path(script, quote.price)
    rng = np.random.default_rng(script.seed + 1)
    records: list[FeedRecord] = []
    next_depth = script.depth_every
    for t, price in zip(times[1:].tolist(), prices[1:].tolist(), strict=True):
        when = market.time + timedelta(seconds=t)
        if sources:
            noise = rng.normal(0.0, ORACLE_NOISE, len(sources))
            for name, e in zip(sources, noise.tolist(), strict=True):
                records.append(
                    Quote(seq=len(records), time=when, asset=script.asset, price=price * (1.0 + e), source=name)
                )
        else:
            records.append(Quote(seq=len(records), time=when, asset=script.asset, price=price))
        if t >= next_depth - 1e-9:
            scale = 1.0 - (1.0 - script.depth_floor) * min(t / script.duration_s, 1.0)
            records.append(DepthChange(seq=len(records), time=when, asset=script.asset, scale=scale))
            next_depth += script.depth_every
    return records


def write_crash(out_dir: str | Path, n_accounts: int, script: CrashScript | None = None) -> dict[str, Path]:
    """Write the demo venue (`n_accounts` accounts) and the crash feed: everything `solvent stream` needs.

    Returns the paths by role: accounts, market, params, history, feed.
    """
    script = CrashScript() if script is None else script
    out = Path(out_dir)
    params = demo_params()
    history = demo_history(script.seed)
    market = demo_market(history, params, script.seed)
    prices = {name: quote.price for name, quote in market.assets.items()}
    instruments = venue_instruments(market.time, prices)
    book = synthetic_book(instruments, prices, n_accounts, script.seed)
    paths = {
        "accounts": out / "accounts.parquet",
        "market": out / "market.json",
        "params": out / "params.json",
        "history": out / "history.csv",
        "feed": out / "feed.ndjson",
    }
    write_portfolio_parquet(instruments, book_to_arrow(book), paths["accounts"])
    with atomic_output(paths["market"]) as tmp:
        Path(tmp).write_bytes(msgspec.json.format(msgspec.json.encode(market), indent=2))
    with atomic_output(paths["params"]) as tmp:
        Path(tmp).write_bytes(params.to_json())
    write_history(history, paths["history"])
    write_feed(paths["feed"], crash_feed(market, script))
    return paths
