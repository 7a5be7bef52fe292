"""The venue the service runs: one `StreamEngine`, fed one batch at a time under a lock, every input and event
logged to a `Store`. Ingestion is idempotent: a record whose sequence number the engine has already seen changes
nothing.

Durability (docs/service.md, "Durable state"): the log is written in transactions of `commit_every` ingested
batches (inputs and their events together), and the engine's state is snapshotted to the store every
`snapshot_every` records or `snapshot_seconds` seconds. `Venue.open` restores a venue from its store: the last
snapshot, then the logged inputs after it replayed, which gives the state and the events of a clean replay of
every committed input."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from solvent.engine.book import Book
from solvent.errors import InputError
from solvent.formats.provenance import InputFile, Provenance, engine_version
from solvent.formats.schemas import MarketSnapshot
from solvent.params import MarginParams
from solvent.service.copies import FigureCopies, FigureOutbox
from solvent.store import MemoryStore, Store, StoreError
from solvent.stream import events as ev
from solvent.stream.engine import StreamEngine, params_digest
from solvent.stream.feed import FeedRecord
from solvent.stream.ledger import Sink

_RECORD = msgspec.json.Encoder()
_EVENTS = msgspec.json.Decoder(ev.Event)
_INPUTS = msgspec.json.Decoder(FeedRecord)

Row = tuple[int, bytes]


class Venue:
    """The engine and its store. Reads (`engine`) and writes (`ingest`) take `lock`: the engine is single-threaded.

    `commit_every`: ingested batches per store transaction (1: each batch is durable before `ingest` returns; N: up
    to N-1 batches whose events were returned may be lost by a crash, never half of one: the log is always a
    prefix of the inputs with all their events). `snapshot_every` / `snapshot_seconds`: snapshot the engine after
    that many records, or that long, since the last snapshot (None: never); a snapshot commits the log first.
    `copies`: where each re-margin's full figures go (service/copies.py): kept here for lock-free reads (the
    default), or packed for the HTTP process (`FigureOutbox`, in the engine process of `solvent serve`)."""

    def __init__(
        self,
        engine: StreamEngine,
        store: Store,
        opening: Sequence[ev.Event] = (),
        *,
        commit_every: int = 1,
        snapshot_every: int | None = None,
        snapshot_seconds: float | None = None,
        copies: FigureCopies | FigureOutbox | None = None,
    ) -> None:
        if commit_every < 1:
            raise ValueError(f"commit_every must be at least 1, got {commit_every}")
        self.engine = engine
        self.store = store
        self.lock = threading.RLock()
        self.commit_every = commit_every
        self.snapshot_every = snapshot_every
        self.snapshot_seconds = snapshot_seconds
        self.inputs: Mapping[str, InputFile] = {}  # the files the venue was started from (role -> digest)
        self._published: list[ev.Event] = []
        self._inputs: list[Row] = []  # logged, not yet committed
        self._events: list[Row] = []
        self._batches = 0
        self._since_snapshot = 0
        self._snapshot_at = time.monotonic()
        engine.sink = self._published.extend
        # Each account's full figures as last margined, for lock-free reads (service/copies.py): every account's
        # of now to start with, then every re-margin's.
        self.copies = FigureCopies(engine.store.n_accounts) if copies is None else copies
        everyone = np.arange(engine.store.n_accounts, dtype=np.int64)
        self.copies.record(everyone, engine.margin_now(everyone), engine.last_input_seq)
        engine.monitor.on_remargin = self.copies.record
        if opening:
            store.append([], [(e.seq, _RECORD.encode(e)) for e in opening])

    @classmethod
    def start(
        cls,
        book: Book,
        snapshot: MarketSnapshot,
        params: MarginParams | None = None,
        store: Store | None = None,
        *,
        copies: FigureCopies | FigureOutbox | None = None,
        **options: Any,
    ) -> Venue:
        """A new venue at the snapshot: its opening events are the log's first."""
        opening: list[ev.Event] = []
        engine = StreamEngine.start(book, snapshot, params, sink=opening.extend, **options)
        return cls(engine, MemoryStore() if store is None else store, opening, copies=copies)

    def provenance(self) -> Provenance:
        """What makes the venue's figures now: the engine, the digest of the parameters in force (an operator's
        change shows at once) and the files it was started from (none for the demo venue)."""
        return Provenance(
            engine=engine_version(), params={"margin": params_digest(self.engine.params)}, inputs=dict(self.inputs)
        )

    @classmethod
    def open(
        cls,
        store: Store,
        book: Book,
        snapshot: MarketSnapshot,
        params: MarginParams | None = None,
        *,
        commit_every: int = 1,
        snapshot_every: int | None = None,
        snapshot_seconds: float | None = None,
        copies: FigureCopies | FigureOutbox | None = None,
        **options: Any,
    ) -> Venue:
        """The venue `store` holds: its last snapshot, then the inputs logged after it replayed one batch each, as
        `ingest` ran them. The replay's events are those already logged (checked byte for byte: a StoreError if
        not, e.g. another book), so nothing is logged twice. A store with nothing logged starts a new venue at
        `snapshot` (`start`) and snapshots its opening state; `book`, `snapshot`, `params` and the engine
        `options` are those of that start, needed again only if the store has no snapshot (`options["screen"]`
        is honoured on restore)."""
        policy: dict[str, Any] = {
            "commit_every": commit_every,
            "snapshot_every": snapshot_every,
            "snapshot_seconds": snapshot_seconds,
            "copies": copies,
        }
        saved = store.last_snapshot()
        replayed: list[ev.Event] = []
        if saved is None and not store.events_after(-1, 1):
            engine = StreamEngine.start(book, snapshot, params, sink=replayed.extend, **options)
            venue = cls(engine, store, replayed, **policy)
            venue.snapshot()
            return venue
        if saved is None:  # a crash between the opening events and the first snapshot
            input_seq, event_seq = -1, -1
            engine = StreamEngine.start(book, snapshot, params, sink=replayed.extend, **options)
        else:
            input_seq, event_seq, state = saved
            engine = _load(state, replayed.extend, bool(options.get("screen", False)))
        for _, data in store.inputs_after(input_seq):
            engine.feed([_INPUTS.decode(data)], source="<store>")
            engine.flush()
        logged = store.events_after(event_seq)
        if [(e.seq, _RECORD.encode(e)) for e in replayed] != logged:
            raise StoreError(
                f"the store's log disagrees with its replay after event {event_seq} ({len(logged)} events logged,"
                f" {len(replayed)} replayed): not this venue's store, or another book or parameters"
            )
        return cls(engine, store, **policy)

    def ingest(self, records: Sequence[FeedRecord], source: str = "<ingest>") -> list[ev.Event]:
        """Apply `records` (ascending sequence numbers) as one batch; records already seen are skipped. Returns the
        batch's events, logged with its inputs (committed per `commit_every`) before they are returned.
        Out-of-order input is an InputError, nothing of it applied."""
        with self.lock:
            fresh = [r for r in records if r.seq > self.engine.last_input_seq]
            if not fresh:
                return []
            self._check_order(fresh, source)
            self.engine.feed(fresh, source=source)
            self.engine.flush()
            published, self._published[:] = list(self._published), []
            self._inputs += [(r.seq, _RECORD.encode(r)) for r in fresh]
            self._events += [(e.seq, _RECORD.encode(e)) for e in published]
            self._batches += 1
            self._since_snapshot += len(fresh)
            if self._batches >= self.commit_every:
                self.commit()
            if (self.snapshot_every is not None and self._since_snapshot >= self.snapshot_every) or (
                self.snapshot_seconds is not None and time.monotonic() - self._snapshot_at >= self.snapshot_seconds
            ):
                self.snapshot()
            return published

    def _check_order(self, records: Sequence[FeedRecord], source: str) -> None:
        """The engine's order checks, on the whole batch before any of it is applied."""
        seq, now = self.engine.last_input_seq, self.engine.last_time
        for i, record in enumerate(records):
            if record.seq <= seq:
                raise InputError(source, f"records[{i}].seq", f"{record.seq} does not follow sequence number {seq}")
            if record.time < now:
                raise InputError(source, f"records[{i}].time", f"{record.time.isoformat()} is before {now.isoformat()}")
            seq, now = record.seq, record.time

    def commit(self) -> None:
        """Write the batches logged since the last commit, in one transaction. If the store fails, they stay
        pending (the engine has applied them: a re-sent record is skipped) and the next commit writes them."""
        with self.lock:
            if self._inputs or self._events:
                self.store.append(self._inputs, self._events)
            self._inputs, self._events, self._batches = [], [], 0

    def snapshot(self) -> None:
        """Commit the log, then store the engine's state (at a batch boundary: resuming from it gives the events of
        one run)."""
        with self.lock, tempfile.TemporaryDirectory(prefix="solvent-snapshot-") as folder:
            path = os.path.join(folder, "state.npz")
            self.engine.save(path)  # events it publishes (none, by the screen's bounds) are logged with the rest
            self._events += [(e.seq, _RECORD.encode(e)) for e in self._published]
            self._published[:] = []
            self.commit()
            with open(path, "rb") as handle:
                state = handle.read()
            self.store.save_snapshot(self.engine.last_input_seq, self.engine.next_seq - 1, state)
            self._since_snapshot = 0
            self._snapshot_at = time.monotonic()

    def events_after(self, seq: int, limit: int | None = None) -> list[ev.Event]:
        """The logged events after sequence number `seq` (resume a subscriber), committed or not yet."""
        with self.lock:
            pending = list(self._events)
        rows = self.store.events_after(seq, limit)
        last = rows[-1][0] if rows else seq
        rows += [row for row in pending if row[0] > last]
        return [_EVENTS.decode(data) for _, data in rows[:limit]]

    def close(self) -> None:
        """Commit what is logged and release the store."""
        with self.lock:
            self.commit()
            self.store.close()


def _load(state: bytes, sink: Sink, screen: bool) -> StreamEngine:
    """The engine a snapshot's bytes (a solvent.state/1 file) hold."""
    with tempfile.TemporaryDirectory(prefix="solvent-snapshot-") as folder:
        path = os.path.join(folder, "state.npz")
        with open(path, "wb") as handle:
            handle.write(state)
        return StreamEngine.load(path, sink=sink, screen=screen)
