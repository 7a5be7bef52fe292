"""`make bench`: durable logging against the engine (issue 15, performance): records and events per second that
SQLite and PostgreSQL log, with batched commits, beside the engine's own ingest rate measured in the same run
(these 2-core machines are noisy: compare within a run, not across runs).

The venue is the demo's under the default parameters (the book and market of `solvent crash`, BTC falling 40%
with five oracle sources quoting it every second, its book thinning), ingested through `Venue` in batches of
`--batch` records (one engine batch per record, as `Venue.ingest` runs them). Rows:
- the engine alone: `Venue` on the in-memory store (the baseline);
- the store alone: the same encoded inputs and events appended to SQLite / PostgreSQL, `commit_every` ingest
  batches per transaction: what the durable log can absorb;
- the venue on each store: ingest, log and snapshot every `--snapshot-every` records, end to end.

Run: `make bench` (or `.venv/bin/python benchmarks/bench_store.py --accounts 2000 --seconds 600`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence

import psycopg
from rich.console import Console
from rich.table import Table

from solvent.demo.crash import CrashScript, crash_feed
from solvent.demo.run import DEMO_SEED, demo_history, demo_market
from solvent.demo.venue import synthetic_book, venue_instruments
from solvent.engine.book import Book
from solvent.formats.schemas import MarketSnapshot
from solvent.params import MarginParams
from solvent.service.venue import Venue
from solvent.store import MemoryStore, Store
from solvent.store.postgres import PostgresStore
from solvent.store.sqlite import SqliteStore
from solvent.stream.feed import FeedRecord

Rows = list[tuple[int, bytes]]


def setup(n_accounts: int, seconds: float) -> tuple[Book, MarketSnapshot, MarginParams, list[FeedRecord]]:
    params = MarginParams()
    market = demo_market(demo_history(DEMO_SEED), params, DEMO_SEED)
    prices = {name: quote.price for name, quote in market.assets.items()}
    book = synthetic_book(venue_instruments(market.time, prices), prices, n_accounts, DEMO_SEED)
    return book, market, params, crash_feed(market, CrashScript(duration_s=seconds))


def run_venue(
    store: Store,
    inputs: tuple[Book, MarketSnapshot, MarginParams, list[FeedRecord]],
    batch: int,
    commit_every: int,
    snapshot_every: int | None,
) -> tuple[float, list[tuple[Rows, Rows]]]:
    """Seconds to ingest the feed (the venue started beforehand), and each ingest's logged (inputs, events)."""
    book, market, params, records = inputs
    venue = Venue.open(store, book, market, params, commit_every=commit_every, snapshot_every=snapshot_every)
    logged: list[tuple[Rows, Rows]] = []
    begin = time.perf_counter()
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        events = venue.ingest(chunk)
        if isinstance(store, MemoryStore):
            logged.append(([(r.seq, b"") for r in chunk], [(e.seq, b"") for e in events]))
    venue.commit()
    elapsed = time.perf_counter() - begin
    if isinstance(store, MemoryStore):  # the bytes the venue logged, grouped by ingest
        inputs_, events_ = dict(store.inputs_after(-1)), dict(store.events_after(-1))
        logged = [([(s, inputs_[s]) for s, _ in i], [(s, events_[s]) for s, _ in e]) for i, e in logged]
    return elapsed, logged


def append_all(store: Store, logged: Sequence[tuple[Rows, Rows]], commit_every: int) -> float:
    """Seconds to append the logged rows, `commit_every` ingests per transaction."""
    begin = time.perf_counter()
    for start in range(0, len(logged), commit_every):
        group = logged[start : start + commit_every]
        store.append([row for i, _ in group for row in i], [row for _, e in group for row in e])
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2_000, help="accounts of the demo venue")
    parser.add_argument("--seconds", type=float, default=600.0, help="seconds of the crash (5 quotes per second)")
    parser.add_argument("--batch", type=int, default=10, help="records per ingest")
    parser.add_argument("--snapshot-every", type=int, default=1_000, help="records between snapshots")
    parser.add_argument(
        "--postgres", default=os.environ.get("SOLVENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    console = Console()
    inputs = setup(args.accounts, args.seconds)
    n_records = len(inputs[3])
    folder = tempfile.mkdtemp(prefix="bench-store-")
    schemas: list[str] = []

    def sqlite() -> Store:
        return SqliteStore(os.path.join(folder, f"{uuid.uuid4().hex}.db"))

    def postgres() -> Store:
        schemas.append(f"bench_store_{uuid.uuid4().hex[:12]}")
        return PostgresStore(args.postgres, schema=schemas[-1])

    try:
        psycopg.connect(args.postgres, connect_timeout=3).close()
        kinds: dict[str, Callable[[], Store]] = {"SQLite": sqlite, "PostgreSQL": postgres}
    except psycopg.OperationalError as error:
        console.print(f"PostgreSQL unreachable at {args.postgres} ({error}): its rows are left out")
        kinds = {"SQLite": sqlite}

    run_venue(MemoryStore(), (*inputs[:3], inputs[3][:50]), args.batch, 1, None)  # warm the jitted kernels
    engine_s, logged = run_venue(MemoryStore(), inputs, args.batch, 1, None)
    n_events = sum(len(e) for _, e in logged)
    table = Table(title=f"Durable logging: {n_records:,} records, {n_events:,} events, {args.accounts:,} accounts")
    for column in ("what", "commit_every", "records/s", "events/s", "x engine rate"):
        table.add_column(column, justify="left" if column == "what" else "right")

    def row(what: str, commit_every: int | str, seconds: float) -> None:
        rate = n_records / seconds
        table.add_row(
            what, str(commit_every), f"{rate:,.0f}", f"{n_events / seconds:,.0f}", f"{rate * engine_s / n_records:.1f}"
        )

    row("engine (Venue on the in-memory store): baseline", 1, engine_s)
    try:
        for name, opener in kinds.items():
            for commit_every in (1, 10, 100):
                store = opener()
                row(f"{name} log alone", commit_every, append_all(store, logged, commit_every))
                store.close()
        for name, opener in kinds.items():
            for commit_every in (1, 10):
                store = opener()
                seconds, _ = run_venue(store, inputs, args.batch, commit_every, args.snapshot_every)
                row(f"Venue on {name}, snapshot every {args.snapshot_every:,} records", commit_every, seconds)
                store.close()
        for name, opener in kinds.items():
            store = opener()
            venue = Venue.open(store, *inputs[:3])
            times = []
            for _ in range(3):
                begin = time.perf_counter()
                venue.snapshot()
                times.append(time.perf_counter() - begin)
            snapshot = store.last_snapshot()
            size = 0 if snapshot is None else len(snapshot[2])
            console.print(f"snapshot on {name}: {size / 1e6:.1f} MB, {1000 * sorted(times)[1]:.0f} ms (median of 3)")
            store.close()
        again, _ = run_venue(MemoryStore(), inputs, args.batch, 1, None)
        row("engine again, after the stores (the run's noise)", 1, again)
    finally:
        if schemas:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                for schema in schemas:
                    admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]
    console.print(table)
    console.print(f"records per ingest: {args.batch}; engine alone: {engine_s:.2f} s for the feed")


if __name__ == "__main__":
    main()
