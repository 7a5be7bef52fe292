"""Durable state for the service: one storage interface (`Store`), an in-memory twin, and (in their own modules)
SQLite and PostgreSQL behind it. A store keeps an append-only, sequence-numbered log of the inputs (feed records)
and the events the engine published for them, and snapshots of the engine's state; it knows bytes and sequence
numbers only, nothing of the engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from solvent.errors import SolventError

STORE_SCHEMA = "solvent.store/1"


class StoreError(SolventError):
    """The store refused a write (a sequence number already logged), or holds something that is not a solvent
    store of this schema, or disagrees with the venue replaying it."""


class Store(Protocol):
    """The storage interface: every method is one transaction."""

    def append(self, inputs: Sequence[tuple[int, bytes]], events: Sequence[tuple[int, bytes]]) -> None:
        """Append encoded inputs and events (sequence number, bytes) together, atomically."""

    def inputs_after(self, seq: int) -> list[tuple[int, bytes]]:
        """The inputs with a sequence number above `seq`, ascending."""

    def events_after(self, seq: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        """The events with a sequence number above `seq`, ascending, at most `limit`."""

    def save_snapshot(self, input_seq: int, event_seq: int, state: bytes) -> None:
        """Store the engine's state after input `input_seq` and event `event_seq`."""

    def last_snapshot(self) -> tuple[int, int, bytes] | None:
        """(input_seq, event_seq, state) of the latest snapshot, or None."""

    def close(self) -> None:
        """Release the store's connections."""


class MemoryStore:
    """The in-memory twin of a durable store (tests, and a service that needs no durability): a sequence number
    already logged is refused, as the durable stores' primary keys refuse it."""

    def __init__(self) -> None:
        self._inputs: dict[int, bytes] = {}
        self._events: dict[int, bytes] = {}
        self._snapshot: tuple[int, int, bytes] | None = None

    def append(self, inputs: Sequence[tuple[int, bytes]], events: Sequence[tuple[int, bytes]]) -> None:
        for kind, log, rows in (("input", self._inputs, inputs), ("event", self._events, events)):
            seqs = [seq for seq, _ in rows]
            if len(set(seqs)) < len(seqs) or not log.keys().isdisjoint(seqs):
                raise StoreError(f"memory store: an {kind} sequence number already logged")
        self._inputs.update(inputs)
        self._events.update(events)

    def inputs_after(self, seq: int) -> list[tuple[int, bytes]]:
        return sorted(row for row in self._inputs.items() if row[0] > seq)

    def events_after(self, seq: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        rows = sorted(row for row in self._events.items() if row[0] > seq)
        return rows if limit is None else rows[:limit]

    def save_snapshot(self, input_seq: int, event_seq: int, state: bytes) -> None:
        self._snapshot = (input_seq, event_seq, state)

    def last_snapshot(self) -> tuple[int, int, bytes] | None:
        return self._snapshot

    def close(self) -> None:
        """Nothing to release."""
