"""The engine's cost of one service tick (issue 15, "Performance"), in process, without HTTP.

The venue is `solvent serve`'s demo venue (demo parameters: filtered historical simulation; BTC, ETH, SOL and USDC
priced from five oracle sources each; USDC collateral) at `--accounts` accounts. A tick is what
benchmarks/bench_service.py's feeder posts every 100 ms: one oracle source (in turn) quotes BTC or ETH
(alternating) on a small random walk, one batch each. The same ticks run through the engine with the health screen
(as `solvent serve --screen`) and without it (the baseline, same run), and with it inside the service's `Venue` (an
in-memory store): each tick also keeps the accounts' figure copies (service/copies.py) and publishes the view that
queries and what-ifs read (service/view.py), as `POST /records` does. Wall and CPU time (this process, every
thread: the kernels run on both cores) per tick, and the accounts re-margined per tick.

Run: PYTHONPATH=src python benchmarks/bench_tick.py [--accounts 100000] [--ticks 100]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from datetime import timedelta

import numpy as np

from solvent.demo.run import DEMO_SEED, ORACLE_SOURCES, demo_history, demo_market, demo_params
from solvent.demo.venue import synthetic_book, venue_instruments
from solvent.service.venue import Venue
from solvent.service.view import VenueView
from solvent.store import MemoryStore
from solvent.stream.engine import StreamEngine
from solvent.stream.events import Event
from solvent.stream.feed import Quote

TARGET_CPU_MS = 100.0  # 10 ticks a second on 2 cores, with room left for the queries


def engine_for(n_accounts: int, screen: bool) -> StreamEngine:
    history = demo_history(DEMO_SEED)
    params = demo_params()
    market = demo_market(history, params, DEMO_SEED)
    prices = {name: quote.price for name, quote in market.assets.items()}
    book = synthetic_book(venue_instruments(market.time, prices), prices, n_accounts, DEMO_SEED)
    return StreamEngine.start(book, market, params, history=history, insurance_fund=1_000_000.0, screen=screen)


def ticks(engine: StreamEngine, count: int) -> list[Quote]:
    """`count` ticks after the engine's clock: the service bench's feeder, seeded the same way."""
    rng = random.Random(1)
    prices = {a: float(engine.market.price[engine.market.state.asset_index[a]]) for a in ("BTC", "ETH")}
    clock = engine.last_time
    out = []
    for k in range(count):
        asset = ("BTC", "ETH")[k % 2]
        prices[asset] *= math.exp(rng.gauss(0.0, 0.0005))
        clock += timedelta(milliseconds=100)
        source = ORACLE_SOURCES[k % len(ORACLE_SOURCES)]
        out.append(
            Quote(seq=engine.last_input_seq + 1 + k, time=clock, asset=asset, price=prices[asset], source=source)
        )
    return out


def run(
    engine: StreamEngine, records: list[Quote], warm: int, service: bool = False
) -> tuple[np.ndarray, np.ndarray, float, list[bytes]]:
    """(wall ms, CPU ms per tick after the first `warm`, accounts re-margined per tick after them, events);
    `service`: each tick through a `Venue` and its published view, as the service runs it."""
    events: list[bytes] = []

    def sink(batch: list[Event]) -> None:
        events.extend(repr(e).encode() for e in batch)

    if service:
        venue = Venue(engine, MemoryStore())  # its sink collects the events `ingest` returns
        views = [VenueView.of(venue)]

        def step(batch: list[Quote]) -> None:
            sink(venue.ingest(batch))
            views[0] = VenueView.of(venue, views[0])  # what POST /records publishes after each batch

    else:
        engine.sink = sink

        def step(batch: list[Quote]) -> None:
            engine.run_batch(batch)

    wall, cpu = [], []
    before = 0
    for k, record in enumerate(records):
        if k == warm:
            before = engine.totals.remargined
        begin, begin_cpu = time.perf_counter(), time.process_time()
        step([record])
        wall.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
    per_tick = (engine.totals.remargined - before) / max(len(records) - warm, 1)
    return np.array(wall[warm:]) * 1e3, np.array(cpu[warm:]) * 1e3, per_tick, events


def split_cost(engine: StreamEngine, asset: str = "BTC") -> list[str]:
    """Rows: the CPU of one margin run over the accounts exposed to `asset` that the screen holds (screened) and
    over those it re-margins at every move (hot), per account: where a tick's re-margin cost lies."""
    assert engine.screen is not None
    exposed = engine.store.exposed[engine.market.state.asset_index[asset]]
    rows = []
    for name, mask in (("screened", (engine.screen.asset >= 0) & exposed), ("hot", engine.screen.hot & exposed)):
        accounts = np.flatnonzero(mask).astype(np.int64)
        engine.pricing.margin(accounts)  # the same rows twice: the second run is timed
        begin = time.process_time()
        engine.pricing.margin(accounts)
        cpu = time.process_time() - begin
        per_account = cpu * 1e6 / max(accounts.size, 1)
        rows.append(f"| {name}, exposed to {asset} | {accounts.size:,} | {cpu * 1e3:.1f} | {per_account:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--warm", type=int, default=10, help="ticks run before timing (JIT, the first bands)")
    args = parser.parse_args()
    rows = []
    digests = []
    split: list[str] = []
    engines = (
        ("without the screen (baseline)", False, False),
        ("with the screen (solvent serve --screen)", True, False),
        ("with the screen, in the service's Venue (copies, published view)", True, True),
    )
    for name, screen, service in engines:
        engine = engine_for(args.accounts, screen)
        wall, cpu, per_tick, events = run(engine, ticks(engine, args.ticks), args.warm, service)
        digests.append(events)
        if screen and not service:
            split = split_cost(engine)
        rows.append(
            f"| {name} | {per_tick:,.0f} | {np.median(wall):.1f} | {np.quantile(wall, 0.9):.1f} | {wall.max():.1f} "
            f"| {np.median(cpu):.1f} | {np.quantile(cpu, 0.9):.1f} |"
        )
    print(f"\n{args.accounts:,} accounts, {args.ticks - args.warm} ticks timed (one source quote of BTC or ETH each)\n")
    print("| engine | re-margined per tick | wall p50 ms | wall p90 ms | wall max ms | CPU p50 ms | CPU p90 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    same = "the same" if all(d == digests[0] for d in digests) else "DIFFERENT"
    print(f"\nevents of the runs: {same} ({len(digests[0])} events); target: CPU p50 <= {TARGET_CPU_MS:.0f} ms\n")
    print("| accounts (after the ticks) | count | margin CPU ms | CPU us per account |")
    print("| --- | ---: | ---: | ---: |")
    print("\n".join(split))


if __name__ == "__main__":
    main()
