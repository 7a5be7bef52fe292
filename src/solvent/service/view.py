"""What the venue published after its last batch: each account's IM, MM, equity, status and early flag, its full
figures as last margined (service/copies.py), and the stream's state for the pre-trade check (stream/published.py),
copied out of the engine under its lock. Reads of it take no lock, so they never wait for a batch in progress."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from solvent.engine.whatif import Decision
from solvent.service.copies import PublishedFigures
from solvent.service.venue import Venue
from solvent.stream.published import Published

STATUSES = ("healthy", "margin_call", "liquidatable")  # the engine's status codes 0, 1, 2, in order


@dataclass(frozen=True, eq=False)
class VenueView:
    """The per-account figures after input `last_input_seq` (at feed time `time`), immutable."""

    time: datetime
    last_input_seq: int
    row_of: Mapping[str, int]
    im: NDArray[np.float64]
    mm: NDArray[np.float64]
    equity: NDArray[np.float64]
    status: NDArray[np.int8]
    flagged: NDArray[np.bool_]
    full: PublishedFigures
    stream: Published

    @classmethod
    def of(cls, venue: Venue, previous: VenueView | None = None) -> VenueView:
        """The view after the venue's last batch; `previous`, the last view, lends what has not changed since."""
        with venue.lock:
            engine = venue.engine
            f = engine.figures
            return cls(
                time=engine.last_time,
                last_input_seq=engine.last_input_seq,
                row_of=engine.store.row_of,  # not copied: set when the book loads, never changed
                im=f.im.copy(),
                mm=f.mm.copy(),
                equity=f.equity.copy(),
                status=f.status.copy(),
                flagged=f.flagged.copy(),
                full=venue.copies.publish(),
                stream=Published.of(engine, None if previous is None else previous.stream),
            )

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
