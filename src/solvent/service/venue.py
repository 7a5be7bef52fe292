"""The venue the service runs: one `StreamEngine`, fed one batch at a time under a lock, every input and event
logged to a `Store` in the same transaction. Ingestion is idempotent: a record whose sequence number the engine
has already seen changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import msgspec

from solvent.engine.book import Book
from solvent.formats.schemas import MarketSnapshot
from solvent.params import MarginParams
from solvent.store import MemoryStore, Store
from solvent.stream import events as ev
from solvent.stream.engine import StreamEngine
from solvent.stream.feed import FeedRecord

_RECORD = msgspec.json.Encoder()
_EVENTS = msgspec.json.Decoder(ev.Event)


class Venue:
    """The engine and its store. Reads (`engine`) and writes (`ingest`) take `lock`: the engine is single-threaded."""

    def __init__(self, engine: StreamEngine, store: Store, opening: Sequence[ev.Event] = ()) -> None:
        self.engine = engine
        self.store = store
        self.lock = threading.RLock()
        self._published: list[ev.Event] = []
        engine.sink = self._published.extend
        if opening:
            store.append([], [(e.seq, _RECORD.encode(e)) for e in opening])

    @classmethod
    def start(
        cls,
        book: Book,
        snapshot: MarketSnapshot,
        params: MarginParams | None = None,
        store: Store | None = None,
        **options: Any,
    ) -> Venue:
        """A new venue at the snapshot: its opening events are the log's first."""
        opening: list[ev.Event] = []
        engine = StreamEngine.start(book, snapshot, params, sink=opening.extend, **options)
        return cls(engine, MemoryStore() if store is None else store, opening)

    def ingest(self, records: Sequence[FeedRecord], source: str = "<ingest>") -> list[ev.Event]:
        """Apply `records` (ascending sequence numbers) as one batch; records already seen are skipped. Returns the
        batch's events, logged with its inputs before they are returned. Out-of-order input is an InputError,
        nothing of it applied."""
        with self.lock:
            fresh = [r for r in records if r.seq > self.engine.last_input_seq]
            if not fresh:
                return []
            self.engine.feed(fresh, source=source)
            self.engine.flush()
            published, self._published[:] = list(self._published), []
            self.store.append(
                [(r.seq, _RECORD.encode(r)) for r in fresh], [(e.seq, _RECORD.encode(e)) for e in published]
            )
            return published

    def events_after(self, seq: int, limit: int | None = None) -> list[ev.Event]:
        """The logged events after sequence number `seq` (resume a subscriber)."""
        return [_EVENTS.decode(data) for _, data in self.store.events_after(seq, limit)]
