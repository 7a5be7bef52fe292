"""Feeding a feed file into a durable venue (what `solvent ingest` runs): the venue is restored from its store
(or started there), the records it has already seen are skipped, the rest ingested in batches; a process killed at
any point and run again on the same store and feed ends where one clean run would."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from solvent.convert.inputs import load_params, load_portfolio
from solvent.formats.io import atomic_output, load_market
from solvent.formats.provenance import Provenance, stamped
from solvent.market.history import read_history
from solvent.service.venue import Venue
from solvent.store.url import open_store
from solvent.stream.feedio import read_feed


@dataclass(frozen=True, kw_only=True)
class IngestFiles:
    """The feed, the store, the venue's start (used only when the store holds no venue yet), the commit and
    snapshot policy (`Venue`), and where to write the summary."""

    feed: str
    store: str
    accounts: str
    market: str
    params: str | None = None
    history: str | None = None
    insurance_fund: float = 0.0
    batch: int = 100  # records per ingest
    commit_every: int = 1
    snapshot_every: int | None = None
    summary: str | None = None
    provenance: Provenance | None = None  # what made the run, written into the summary


def ingest_feed(files: IngestFiles, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Ingest `files.feed` into the venue of `files.store`, snapshot it, and return (and write) its summary.
    `progress(last_input_seq)` is called after every batch."""
    records = read_feed(files.feed)
    store = open_store(files.store)
    try:
        venue = Venue.open(
            store,
            load_portfolio(files.accounts),
            load_market(files.market),
            load_params(files.params),
            commit_every=files.commit_every,
            snapshot_every=files.snapshot_every,
            history=None if files.history is None else read_history(files.history),
            insurance_fund=files.insurance_fund,
            portfolio_source=os.fspath(files.accounts),
            market_source=os.fspath(files.market),
        )
        for start in range(0, len(records), files.batch):
            venue.ingest(records[start : start + files.batch], source=files.feed)
            if progress is not None:
                progress(venue.engine.last_input_seq)
        venue.snapshot()
        summary = venue.engine.summary() | {"feed": files.feed, "store_input_seq": venue.engine.last_input_seq}
        summary = stamped(summary, files.provenance)
    finally:
        store.close()
    if files.summary is not None:
        with atomic_output(files.summary) as tmp, open(tmp, "wb") as handle:
            handle.write(msgspec.json.format(msgspec.json.encode(summary), indent=2) + b"\n")
    return summary
