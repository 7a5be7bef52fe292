"""`make bench`: the venue on NATS JetStream (issue 15 item 2) beside its baseline, the same venue ingesting the
same records in process, measured in the same run (these 2-core machines are noisy: compare within a run).

The venue is the demo's (BTC/ETH/SOL, five oracle sources per asset) under the default parameters; the feed is a
random walk of source quotes, one record per batch, as a venue's oracles send them. Rows:
- in process (baseline): `Venue.ingest` of the records in fetch-sized chunks, on a MemoryStore;
- publish: the feeder's side, records published to the feed stream, each confirmed by JetStream;
- through the bus: from the pump's start until every record is ingested and acknowledged and every event
  published (each confirmed by JetStream before the next), on a fresh venue.

Run: `make bench` (or `.venv/bin/python benchmarks/bench_bus.py --accounts 1000 --records 1000`). Skipped, saying
so, when no NATS server answers at --nats.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import msgspec
import numpy as np
from rich.console import Console
from rich.table import Table

from solvent.demo.run import DEMO_SEED, demo_history, demo_market
from solvent.demo.venue import synthetic_book, venue_instruments
from solvent.formats.schemas import MarketSnapshot
from solvent.params import MarginParams
from solvent.service.nats import NatsConfig, connect, ensure_streams, run_nats
from solvent.service.venue import Venue
from solvent.stream.feed import FeedRecord, Quote


def venue(market: MarketSnapshot, n_accounts: int) -> Venue:
    prices = {name: quote.price for name, quote in market.assets.items()}
    book = synthetic_book(venue_instruments(market.time, prices), prices, n_accounts, DEMO_SEED)
    return Venue.start(book, market, MarginParams(), insurance_fund=1e7)


def feed(market: MarketSnapshot, n: int) -> list[FeedRecord]:
    """`n` source quotes, round robin over the assets and their sources, each asset a random walk, 100 ms apart."""
    rng = np.random.default_rng(7)
    pairs = [(asset, source.name) for asset, quote in market.assets.items() for source in quote.sources]
    level = {asset: quote.price for asset, quote in market.assets.items()}
    records: list[FeedRecord] = []
    for i in range(n):
        asset, source = pairs[i % len(pairs)]
        level[asset] *= float(np.exp(rng.normal(0.0, 5e-4)))
        at = market.time + timedelta(milliseconds=100 * (i + 1))
        records.append(Quote(seq=i, time=at, asset=asset, price=level[asset], source=source, timestamp=at))
    return records


def in_process(market: MarketSnapshot, n_accounts: int, records: list[FeedRecord], batch: int) -> tuple[float, int]:
    service = venue(market, n_accounts)
    begin = time.perf_counter()
    for k in range(0, len(records), batch):
        service.ingest(records[k : k + batch])
    return time.perf_counter() - begin, service.engine.next_seq


async def through_the_bus(
    market: MarketSnapshot, n_accounts: int, records: list[FeedRecord], config: NatsConfig
) -> tuple[float, float, int]:
    connection = await connect(config)
    js = connection.jetstream()
    try:
        await ensure_streams(js, config)
        begin = time.perf_counter()
        for record in records:
            await js.publish(f"{config.prefix}.feed.quote", msgspec.json.encode(record))
        publish_s = time.perf_counter() - begin
        service = venue(market, n_accounts)
        stop = asyncio.Event()
        begin = time.perf_counter()
        task = asyncio.create_task(run_nats(service, config, stop))
        while service.engine.last_input_seq < records[-1].seq:
            await asyncio.sleep(0.005)
        stop.set()
        await task  # the pump publishes the last batch's events before it stops
        return publish_s, time.perf_counter() - begin, service.engine.next_seq
    finally:
        for name in (config.feed_stream, config.events_stream):
            await js.delete_stream(name)
        await connection.close()


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=1.0).close()
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--records", type=int, default=1_000)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    args = parser.parse_args()
    console = Console(width=110)
    if not reachable(args.nats):
        console.print(f"bench_bus: skipped, no NATS server at {args.nats}")
        return
    market = demo_market(demo_history(DEMO_SEED), MarginParams(), DEMO_SEED)
    records = feed(market, args.records)
    config = NatsConfig(url=args.nats, prefix=f"bench{uuid.uuid4().hex[:8]}", fetch_timeout_s=0.05)
    in_process(market, 100, records[:50], config.batch)  # compile the kernels before anything is timed
    base_s, events = in_process(market, args.accounts, records, config.batch)
    publish_s, bus_s, bus_events = asyncio.run(through_the_bus(market, args.accounts, records, config))
    assert bus_events == events, (bus_events, events)
    table = Table(title=f"the venue on NATS JetStream: {args.accounts:,} accounts, {len(records):,} source quotes")
    for column in ("path", "seconds", "records/s", "events", "events/s", "vs baseline"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name, seconds, n_events in (
        ("in process (baseline)", base_s, events),
        ("publish to the feed stream", publish_s, 0),
        ("through the bus (pump)", bus_s, bus_events),
    ):
        table.add_row(
            name,
            f"{seconds:.2f}",
            f"{len(records) / seconds:,.0f}",
            f"{n_events:,}" if n_events else "",
            f"{n_events / seconds:,.0f}" if n_events else "",
            f"{seconds / base_s:.2f}x",
        )
    console.print(table)


if __name__ == "__main__":
    main()
