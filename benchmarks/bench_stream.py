"""`make bench`: the streaming engine's performance targets (issue 4), each beside a baseline measured in the
same run (these 2-core machines are noisy: compare within a run, not across runs).

Targets: a tick on one underlying touching 10,000 accounts, health and events updated, <= 5 ms; a block
carrying a price for every asset over 1,000,000 accounts <= 0.5 s; a pre-trade what-if <= 50 us per order.
The venue is the demo's (BTC/ETH/SOL spot, perpetuals, futures and an option chain; five oracle sources per
asset) under the default parameters (grid scenarios), so a tick re-margins the accounts holding its asset.
Baseline: `margin_book` from scratch (scenarios, risk arrays, every account) on the same accounts.

Run: `make bench` (or `.venv/bin/python benchmarks/bench_stream.py --accounts 1000000`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta

import numpy as np
from rich.console import Console
from rich.table import Table

from solvent.demo.run import DEMO_SEED, demo_history, demo_market
from solvent.demo.venue import synthetic_book, venue_instruments
from solvent.engine.margin import margin_book
from solvent.formats.schemas import MarketSnapshot
from solvent.params import MarginParams
from solvent.stream.engine import StreamEngine
from solvent.stream.events import LiquidationExecuted
from solvent.stream.feed import FeedRecord, Quote

TICK_TARGET_MS = 5.0
BLOCK_TARGET_S = 0.5
WHATIF_TARGET_US = 50.0


def venue(n_accounts: int, params: MarginParams) -> tuple[MarketSnapshot, StreamEngine]:
    history = demo_history(DEMO_SEED)
    market = demo_market(history, params, DEMO_SEED)
    prices = {name: quote.price for name, quote in market.assets.items()}
    instruments = venue_instruments(market.time, prices)
    book = synthetic_book(instruments, prices, n_accounts, DEMO_SEED)
    return market, StreamEngine.start(book, market, params, insurance_fund=1e7)


def quotes(market: MarketSnapshot, assets: list[str], seq: int, seconds: float, move: float) -> list[FeedRecord]:
    """One quote per oracle source of every asset in `assets`, the price moved by `move`."""
    time_ = market.time + timedelta(seconds=seconds)
    records: list[FeedRecord] = []
    for asset in assets:
        quote = market.assets[asset]
        for source in quote.sources:
            records.append(
                Quote(
                    seq=seq + len(records), time=time_, asset=asset, price=quote.price * (1 + move), source=source.name
                )
            )
    return records


def bench_tick(market: MarketSnapshot, engine: StreamEngine, ticks: int) -> tuple[float, int, float]:
    """(median ms per one-asset tick, accounts it touches, baseline ms of margin_book on those accounts)."""
    btc = engine.market.state.asset_index["BTC"]
    touched = np.flatnonzero(engine.store.exposed[btc]).astype(np.int64)
    times = []
    seq = engine.last_input_seq + 1
    for k in range(ticks):
        move = 0.0005 * ((-1) ** k)
        batch = quotes(market, ["BTC"], seq, 10.0 + k, move)
        seq += len(batch)
        engine.feed(batch, block_ms=1000)
        start = time.perf_counter()
        engine.flush()
        times.append((time.perf_counter() - start) * 1000.0)
    book = engine.store.book_of(touched)
    state = engine.market.state
    baseline = min(_timed(lambda: margin_book(book, state, engine.params)) for _ in range(3)) * 1000.0
    return statistics.median(times[2:]), int(touched.size), baseline


def bench_block(market: MarketSnapshot, engine: StreamEngine, repeats: int) -> tuple[float, float, float, int]:
    """A block pricing every asset over every account: (best seconds to re-margin and publish the changes,
    best seconds of the liquidation pass that follows, baseline margin_book seconds, accounts the pass
    sliced in its last run). The pass is timed apart: its cost is the number of accounts in liquidation
    (the demo venue starts with about 0.5% of them liquidatable), not the block."""
    assets = [name for name, quote in market.assets.items() if quote.sources]
    seq = engine.last_input_seq + 1
    health, liquidation = [], []
    sliced = 0
    for k in range(repeats):
        batch = quotes(market, assets, seq, 1000.0 + 60.0 * k, 0.0003 * ((-1) ** k))
        seq += len(batch)
        start = time.perf_counter()
        engine.apply_batch(batch)
        middle = time.perf_counter()
        events = engine.settle(batch[-1].time, batch[-1].seq)
        health.append(middle - start)
        liquidation.append(time.perf_counter() - middle)
        sliced = len({e.account for e in events if isinstance(e, LiquidationExecuted)})
    everyone = np.arange(engine.store.n_accounts, dtype=np.int64)
    book = engine.store.book_of(everyone)
    state = engine.market.state
    baseline = min(_timed(lambda: margin_book(book, state, engine.params)) for _ in range(2))
    return min(health), min(liquidation), baseline, sliced


def bench_whatif(engine: StreamEngine, orders: int) -> tuple[float, float]:
    """(median us per what-if through the engine, median us of the same account's margin_book)."""
    ids = [str(a) for a in engine.store.account_ids[:orders].tolist()]
    engine.what_if(ids[0], "BTC-PERP", 0.1, 1.0)  # warm the checker and its kernels
    times = []
    for name in ids:
        engine.what_if(name, "BTC-PERP", 0.1, float(engine.market.price[engine.market.state.asset_index["BTC"]]))
        start = time.perf_counter()
        engine.what_if(name, "BTC-PERP", 0.1, float(engine.market.price[engine.market.state.asset_index["BTC"]]))
        times.append((time.perf_counter() - start) * 1e6)
    one = engine.store.book_of(np.array([0], dtype=np.int64))
    state = engine.market.state
    baseline = min(_timed(lambda: margin_book(one, state, engine.params)) for _ in range(20)) * 1e6
    return statistics.median(times), baseline


def _timed(run: object) -> float:
    start = time.perf_counter()
    run()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts in the block benchmark")
    parser.add_argument("--tick-accounts", type=int, default=17_000, help="venue size for the tick benchmark")
    args = parser.parse_args()
    console = Console()
    params = MarginParams()
    table = Table(title="Streaming engine (demo venue, default parameters)")
    for column in ("measure", "solvent", "baseline (same run)", "target", "met"):
        table.add_column(column, justify="right" if column != "measure" else "left")

    market, engine = venue(args.tick_accounts, params)
    tick_ms, touched, tick_base = bench_tick(market, engine, 40)
    table.add_row(
        f"one-asset tick, {touched:,} accounts touched (ms)",
        f"{tick_ms:.2f}",
        f"{tick_base:.1f} margin_book",
        f"<= {TICK_TARGET_MS}",
        "yes" if tick_ms <= TICK_TARGET_MS else "no",
    )
    whatif_us, whatif_base = bench_whatif(engine, 2000)
    table.add_row(
        "pre-trade what-if (us per order)",
        f"{whatif_us:.1f}",
        f"{whatif_base:,.0f} margin_book",
        f"<= {WHATIF_TARGET_US}",
        "yes" if whatif_us <= WHATIF_TARGET_US else "no",
    )
    console.print(f"building a {args.accounts:,}-account venue for the block benchmark ...")
    market, engine = venue(args.accounts, params)
    block_s, pass_s, block_base, sliced = bench_block(market, engine, 3)
    table.add_row(
        f"block pricing every asset, {args.accounts:,} accounts: health + events (s)",
        f"{block_s:.3f}",
        f"{block_base:.3f} margin_book",
        f"<= {BLOCK_TARGET_S}",
        "yes" if block_s <= BLOCK_TARGET_S else "no",
    )
    table.add_row(f"  then the liquidation pass, {sliced:,} accounts sliced (s)", f"{pass_s:.3f}", "", "", "")
    console.print(table)


if __name__ == "__main__":
    main()
