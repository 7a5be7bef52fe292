"""The venue's operations as the HTTP API asks for them: a batch of records, a parameter change, an account
margined afresh, the dashboard's numbers, a page of events. Each takes the venue's lock and answers in plain,
picklable values, so that the same calls serve a venue in the HTTP process (service/access.py, `LocalVenue`) and one
in a process of its own (service/engine_process.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np

from solvent.convert.results import account_document
from solvent.errors import InputError, SolventError
from solvent.params import MarginParams
from solvent.service.dashboard import dashboard_data
from solvent.service.venue import Venue
from solvent.service.view import STATUSES
from solvent.stream import events as ev
from solvent.stream.engine import params_digest
from solvent.stream.feed import FeedRecord, ParamsChange

#: Threads a batch's parallel kernels use: every core but one, left to the event loop that answers the queries
#: meanwhile (on 2 cores, queries under ticks had a p99 of 7.7-9.6 ms with one thread, 10.6-13.8 ms with both:
#: docs/benchmarks.md, issue 15). The figures do not depend on it (solvent._numba).
BATCH_THREADS: Final = max(1, (os.cpu_count() or 1) - 1)
#: The operations after which the venue publishes a new view (service/view.py).
BATCHES: Final = frozenset({"ingest", "change_params"})


class Refused(Exception):
    """The venue refused the call and applied nothing of it (a batch out of order, parameters it cannot take): the
    API answers 422 with the message."""


@dataclass(frozen=True)
class Ingested:
    """A batch applied: `seen`, the last input's sequence number before it (the records after it were applied, the
    others skipped), its events and how long the venue took, seconds."""

    seen: int
    events: list[ev.Event]
    seconds: float


@dataclass(frozen=True)
class ParamsChanged:
    """New parameters applied as the feed's record `seq` at `time`: the parameters' digests before and after, and
    the events of the re-margin."""

    seq: int
    time: datetime
    before: str
    after: str
    events: list[ev.Event]


class VenueHost:
    """The operations on `venue`, each under its lock (see the module)."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    def ingest(self, records: Sequence[FeedRecord], source: str) -> Ingested:
        """Apply `records` as one batch (`Venue.ingest`); out of order: Refused, nothing applied."""
        begin = time.perf_counter()
        with self.venue.lock:
            seen = self.venue.engine.last_input_seq
            try:
                events = self.venue.ingest(records, source=source)
            except InputError as exc:
                raise Refused(str(exc)) from None
        return Ingested(seen, events, time.perf_counter() - begin)

    def change_params(self, params: MarginParams) -> ParamsChanged:
        """`params` applied as the feed's next record (the next sequence number, at the feed's current time)."""
        venue = self.venue
        with venue.lock:
            engine = venue.engine
            before = params_digest(engine.params)
            record = ParamsChange(seq=engine.last_input_seq + 1, time=engine.last_time, params=params)
            try:
                events = venue.ingest([record], source="<params>")
            except (SolventError, ValueError) as exc:
                raise Refused(str(exc)) from None
            return ParamsChanged(record.seq, record.time, before, params_digest(engine.params), events)

    def fresh_account(self, account: str) -> dict[str, Any] | None:
        """The account margined now (`as_of_seq`: the last input's sequence number); None if unknown."""
        with self.venue.lock:
            engine = self.venue.engine
            row = engine.store.row_of.get(account)
            if row is None:
                return None
            result = engine.margin_now(np.array([row], dtype=np.int64))
            status, flagged = int(engine.figures.status[row]), bool(engine.figures.flagged[row])
            as_of = engine.last_input_seq
        document = account_document(result, 0)
        return {**document, "as_of_seq": as_of, "status": STATUSES[status], "predictive_flag": flagged}

    def dashboard(self) -> dict[str, Any]:
        """The dashboard's numbers (service/dashboard.py)."""
        return dashboard_data(self.venue)

    def events_after(self, seq: int, limit: int) -> list[ev.Event]:
        """The logged events after `seq`, at most `limit` (`Venue.events_after`)."""
        return self.venue.events_after(seq, limit)
