"""The venue `solvent serve` runs, from its options: the portfolio and market files, or the demo venue. Both sides
of the service use it: the engine process builds its venue here (service/engine_process.py), and `solvent serve`
(service/serve.py) takes its options from here."""

from __future__ import annotations

from dataclasses import dataclass

from solvent.service.copies import FigureCopies, FigureOutbox
from solvent.service.venue import Venue
from solvent.store.url import DEFAULT_STORE

#: Batches between snapshots of the engine's state (a restart replays at most this many from the log).
SNAPSHOT_EVERY = 1_000
#: Niceness added to the engine process: where it and the HTTP process want the same core, the requests go first
#: (the engine still gets every cycle they leave; docs/benchmarks.md, issue 15, 2026-12-08).
ENGINE_NICENESS = 10


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
