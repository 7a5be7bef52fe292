"""What the venue published after its last batch: each account's IM, MM, equity, status and early flag, its full
figures as last margined (service/copies.py), the stream's state for the pre-trade check (stream/published.py)
and the venue's summary (`GET /venue`), copied out of the engine under its lock. Reads of it take no lock, so they
never wait for a batch in progress. In `solvent serve` the view is built in the engine's process and sent to the
HTTP process (service/engine_process.py), which puts its own copies of the full figures in."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from solvent.engine.whatif import Decision
from solvent.formats.provenance import stamped
from solvent.market.oracle import OracleStatus
from solvent.service.copies import FigureCopies, PublishedFigures
from solvent.service.venue import Venue
from solvent.stream.published import Published

STATUSES = ("healthy", "margin_call", "liquidatable")  # the engine's status codes 0, 1, 2, in order
#: No account's full figures: those of a view built where the copies are not kept (the engine process).
NO_FIGURES = PublishedFigures(None, np.zeros((0, 0)), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class VenueView:
    """The per-account figures after input `last_input_seq` (at feed time `time`; the next event's sequence number
    `next_event_seq`) and the venue's summary (`venue`: the `GET /venue` answer), immutable."""

    time: datetime
    last_input_seq: int
    next_event_seq: int
    row_of: Mapping[str, int]
    im: NDArray[np.float64]
    mm: NDArray[np.float64]
    equity: NDArray[np.float64]
    status: NDArray[np.int8]
    flagged: NDArray[np.bool_]
    full: PublishedFigures
    stream: Published
    venue: dict[str, Any]

    @classmethod
    def of(cls, venue: Venue, previous: VenueView | None = None) -> VenueView:
        """The view after the venue's last batch; `previous`, the last view, lends what has not changed since.
        A venue whose copies are a `FigureOutbox` (the engine process's) gives a view without full figures: the
        HTTP process adds its own (`with_figures`)."""
        with venue.lock:
            engine = venue.engine
            f = engine.figures
            copies = venue.copies
            return cls(
                time=engine.last_time,
                last_input_seq=engine.last_input_seq,
                next_event_seq=engine.next_seq,
                row_of=engine.store.row_of,  # not copied: set when the book loads, never changed
                im=f.im.copy(),
                mm=f.mm.copy(),
                equity=f.equity.copy(),
                status=f.status.copy(),
                flagged=f.flagged.copy(),
                full=copies.publish() if isinstance(copies, FigureCopies) else NO_FIGURES,
                stream=Published.of(engine, None if previous is None else previous.stream),
                venue=venue_summary(venue),
            )

    def with_figures(self, full: PublishedFigures) -> VenueView:
        """This view with `full` for its full figures."""
        return dataclasses.replace(self, full=full)

    def full_account(self, row: int, account: str) -> dict[str, Any] | None:
        """One account's record as `GET /accounts` gives it (IM with every term, MM, equity, health, Greeks, the
        predictive figures) as of its last re-margin (`as_of_seq`), with the status and early flag after the last
        batch; None when there is no copy of it."""
        document = self.full.document(row, account)
        if document is None:
            return None
        return {**document, "status": STATUSES[int(self.status[row])], "predictive_flag": bool(self.flagged[row])}

    def what_if(self, account: str, instrument: str, quantity: float, price: float, fee: float) -> Decision:
        """The pre-trade check on the state after the last batch (`Published.what_if`): no lock."""
        return self.stream.what_if(account, instrument, quantity, price, fee)

    def account(self, row: int) -> dict[str, Any]:
        """One account's published figures (health: equity / MM, null when MM is 0)."""
        mm, equity = float(self.mm[row]), float(self.equity[row])
        return {
            "im": float(self.im[row]),
            "mm": mm,
            "equity": equity,
            "health": equity / mm if mm > 0.0 and math.isfinite(equity) else None,
            "status": STATUSES[int(self.status[row])],
            "predictive_flag": bool(self.flagged[row]),
            "time": self.time,
            "last_input_seq": self.last_input_seq,
        }


def venue_summary(venue: Venue) -> dict[str, Any]:
    """The venue now (`GET /venue`): what makes its figures (provenance: engine, parameters' digest, input files),
    the run's figures, the feed's time and last sequence number, accounts by status, the insurance fund, each
    asset's price and oracle status, total equity, IM and MM."""
    with venue.lock:
        engine = venue.engine
        figures = engine.figures
        counts = np.bincount(figures.status.astype(np.int64), minlength=len(STATUSES)).tolist()
        market = engine.market
        return {
            **stamped(engine.summary(), venue.provenance()),
            "time": engine.last_time,
            "last_input_seq": engine.last_input_seq,
            "prices": dict(zip(market.assets, market.price.tolist(), strict=True)),
            "insurance_fund": engine.fund,
            "accounts_by_status": dict(zip(STATUSES, counts, strict=False)),
            "oracle_status": {a: OracleStatus(int(s)).name for a, s in zip(market.assets, market.status, strict=True)},
            "totals": {
                "equity": float(np.sum(figures.equity)),
                "im": float(np.sum(figures.im)),
                "mm": float(np.sum(figures.mm)),
            },
        }
