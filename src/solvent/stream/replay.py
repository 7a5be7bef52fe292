"""Replaying a feed file through the streaming engine: what `solvent stream` runs.

The events are written as they are published, into a temporary file beside the target; the events file,
the summary and the saved state appear only when the whole replay succeeded (nothing half-written).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from solvent.convert.inputs import load_params, load_portfolio
from solvent.errors import InputError
from solvent.formats.io import atomic_output, load_market
from solvent.formats.provenance import Provenance, stamped
from solvent.market.history import read_history
from solvent.stream.engine import StreamEngine
from solvent.stream.events import Event, encode_events
from solvent.stream.feedio import read_feed

#: Records applied between two progress reports.
PROGRESS_EVERY = 10_000


@dataclass(frozen=True, kw_only=True)
class ReplayFiles:
    """Inputs and outputs of a replay. Either a starting point (accounts + market, optional params, history
    and insurance fund) or `state_in`, a stream saved earlier (which carries all of them)."""

    feed: str
    events: str
    summary: str
    accounts: str | None = None
    market: str | None = None
    params: str | None = None
    history: str | None = None
    insurance_fund: float = 0.0
    state_in: str | None = None
    state_out: str | None = None
    block_ms: int | None = None
    screen: bool = False  # the engine's health screen (`solvent.stream.screen`): the same events
    margin_calls: bool = True  # StreamEngine's options of the same names (a resumed stream keeps its own)
    reflag: bool = True
    provenance: Provenance | None = None  # what made the run, written into the summary


def replay(files: ReplayFiles, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Replay `files.feed` and write the events, the summary (returned) and, if asked, the final state.

    `progress(done, total)` is called every PROGRESS_EVERY records. Bad input raises InputError before
    anything is written.
    """
    records = read_feed(files.feed)
    with atomic_output(files.events) as events_tmp, open(events_tmp, "wb") as out:

        def sink(events: Sequence[Event]) -> None:
            if events:
                out.write(encode_events(events))

        engine = engine_for(files, sink)
        for start in range(0, len(records), PROGRESS_EVERY):
            engine.feed(records[start : start + PROGRESS_EVERY], files.block_ms, files.feed, first_index=start)
            if progress is not None:
                progress(min(start + PROGRESS_EVERY, len(records)), len(records))
        engine.flush()
        out.flush()
        return write_summary(engine, files)


def write_summary(engine: StreamEngine, files: ReplayFiles) -> dict[str, Any]:
    """Write the engine's summary (returned, with the feed, `block_ms` and the provenance) and, if asked, its
    state."""
    summary = stamped(engine.summary() | {"feed": files.feed, "block_ms": files.block_ms}, files.provenance)
    with atomic_output(files.summary) as summary_tmp:
        with open(summary_tmp, "wb") as handle:
            handle.write(msgspec.json.format(msgspec.json.encode(summary), indent=2) + b"\n")
        if files.state_out is not None:
            engine.save(files.state_out)
    return summary


def engine_for(files: ReplayFiles, sink: Callable[[Sequence[Event]], None]) -> StreamEngine:
    if files.state_in is not None:
        return StreamEngine.load(files.state_in, sink, screen=files.screen)
    if files.accounts is None or files.market is None:
        raise ValueError("a replay starts from accounts and a market, or from a saved state")
    params = load_params(files.params)
    if not files.reflag and params.predictive.action == "deleverage":
        raise InputError(
            files.params or "<params>",
            "predictive.action",
            "'deleverage' needs every early flag watched, not first flags only",
        )
    history = read_history(files.history) if files.history else None
    return StreamEngine.start(
        load_portfolio(files.accounts),
        load_market(files.market),
        params,
        history=history,
        insurance_fund=files.insurance_fund,
        sink=sink,
        portfolio_source=os.fspath(files.accounts),
        market_source=os.fspath(files.market),
        screen=files.screen,
        margin_calls=files.margin_calls,
        reflag=files.reflag,
    )
