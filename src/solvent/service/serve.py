"""`solvent serve`: build the venue (from files, or the demo venue) in an engine process of its own
(service/engine_process.py), load the keys, and run the API on granian in this process (one worker: it holds the
replica of what the venue published, and sends the engine its batches)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from solvent._extras import check_extra, requires_extra
from solvent.service.auth import KeyRing, Role, add_key
from solvent.service.copies import FigureCopies, FigureOutbox
from solvent.service.venue import Venue
from solvent.store.url import DEFAULT_STORE

check_extra("service")  # before `solvent serve` writes its first key: the server and the API are imported later

#: The fields of a log record that are not the caller's `extra`.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}

#: Batches between snapshots of the engine's state (a restart replays at most this many from the log).
SNAPSHOT_EVERY = 1_000
#: Niceness added to the engine process: where it and the HTTP process want the same core, the requests go first
#: (the engine still gets every cycle they leave; docs/benchmarks.md, issue 15, 2026-12-08).
ENGINE_NICENESS = 10


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


@dataclass(frozen=True)
class ServeOptions:
    """Where the venue comes from and where the service listens."""

    portfolio: str | None = None
    market: str | None = None
    params: str | None = None
    history: str | None = None
    demo_accounts: int = 2_000
    insurance_fund: float = 1_000_000.0
    store: str = DEFAULT_STORE
    keys: str = "solvent-keys.json"
    host: str = "127.0.0.1"
    port: int = 8000
    screen: bool = False  # the engine's health screen: a tick re-margins only accounts near a boundary
    batch_threads: int | None = None  # threads of a batch's parallel kernels (None: `host.BATCH_THREADS`)
    engine_niceness: int = ENGINE_NICENESS  # added to the engine process's niceness


def build_venue(options: ServeOptions, copies: FigureCopies | FigureOutbox | None = None) -> Venue:
    """The venue of `options`: the portfolio and market files, or (without them) the demo venue; `copies`: where
    its re-margins' full figures go (`Venue`)."""
    from solvent.store.url import open_store

    store = open_store(options.store)
    if options.portfolio is not None and options.market is not None:
        from solvent.convert.inputs import load_params, load_portfolio
        from solvent.formats.io import load_market
        from solvent.formats.provenance import provenance_of
        from solvent.market.history import read_history

        history = None if options.history is None else read_history(options.history)
        venue = Venue.open(
            store,
            load_portfolio(options.portfolio),
            load_market(options.market),
            load_params(options.params),
            snapshot_every=SNAPSHOT_EVERY,
            history=history,
            insurance_fund=options.insurance_fund,
            screen=options.screen,
            copies=copies,
            portfolio_source=options.portfolio,
            market_source=options.market,
        )
        files = {"portfolio": options.portfolio, "market": options.market, "params": options.params}
        venue.inputs = provenance_of(files | {"history": options.history}, {}).inputs
        return venue
    from solvent.demo.defaults import DEMO_SEED
    from solvent.demo.run import demo_history, demo_market, demo_params
    from solvent.demo.venue import synthetic_book, venue_instruments

    history = demo_history(DEMO_SEED)
    params = demo_params()
    market = demo_market(history, params, DEMO_SEED)
    prices = {name: quote.price for name, quote in market.assets.items()}
    book = synthetic_book(venue_instruments(market.time, prices), prices, options.demo_accounts, DEMO_SEED)
    return Venue.open(
        store,
        book,
        market,
        params,
        snapshot_every=SNAPSHOT_EVERY,
        history=history,
        insurance_fund=options.insurance_fund,
        screen=options.screen,
        copies=copies,
    )


def _check_store_extra(url: str) -> None:
    """A PostgreSQL store's extra is installed (MissingExtraError, before the engine process opens the store)."""
    from urllib.parse import urlsplit

    if urlsplit(url).scheme in ("postgresql", "postgres"):
        check_extra("postgres")


def first_key(path: str) -> str | None:
    """If the keys file `path` is missing, create it with one operator key and return that key (else None)."""
    if Path(path).exists():
        return None
    return add_key(path, "operator", Role.OPERATOR)


def serve(options: ServeOptions) -> None:
    """Run the service until interrupted."""
    with requires_extra("service"):
        from granian.constants import Interfaces
        from granian.server.embed import Server

    from solvent.service.app import create_app
    from solvent.service.engine_process import VenueClient

    keys = KeyRing.load(options.keys)
    _check_store_extra(options.store)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    venue = VenueClient.start(options)
    try:
        app = create_app(venue, keys)
        server = Server(app, address=options.host, port=options.port, interface=Interfaces.ASGI, log_enabled=False)
        logging.getLogger("solvent.service").info("listening", extra={"host": options.host, "port": options.port})
        asyncio.run(server.serve())
    finally:
        venue.close()
