"""The SQLite store: one file, zero set-up, the service's default. WAL journal (readers do not block the writer)
and `synchronous=FULL` (a committed append survives a power cut as well as a killed process); sequence numbers are
primary keys, so a duplicate is refused, never written twice. Tables: docs/formats.md, "solvent.store/1"."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from solvent.store import STORE_SCHEMA, StoreError

_TABLES = (
    "CREATE TABLE IF NOT EXISTS solvent_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS inputs (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS snapshots (input_seq INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL,"
    " state BLOB NOT NULL)",
)


class SqliteStore:
    """A `Store` in one SQLite file (created on first use). Safe to share between threads: one connection, one
    lock, every method one transaction."""

    def __init__(self, path: str | os.PathLike[str], synchronous: str = "FULL") -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        with self._transaction():
            for table in _TABLES:
                self._db.execute(table)
            self._db.execute("INSERT OR IGNORE INTO solvent_meta VALUES ('schema', ?)", (STORE_SCHEMA,))
            (schema,) = self._db.execute("SELECT value FROM solvent_meta WHERE key = 'schema'").fetchone()
        if schema != STORE_SCHEMA:
            raise StoreError(f"{self.path}: a {schema} store, expected {STORE_SCHEMA}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; ROLLBACK on any error, a duplicate sequence number raised as a
        StoreError."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except sqlite3.IntegrityError as error:
                self._db.execute("ROLLBACK")
                raise StoreError(f"{self.path}: {error} (a sequence number already logged)") from None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def append(self, inputs: Sequence[tuple[int, bytes]], events: Sequence[tuple[int, bytes]]) -> None:
        with self._transaction():
            self._db.executemany("INSERT INTO inputs VALUES (?, ?)", inputs)
            self._db.executemany("INSERT INTO events VALUES (?, ?)", events)

    def inputs_after(self, seq: int) -> list[tuple[int, bytes]]:
        with self._lock:
            return self._db.execute("SELECT seq, data FROM inputs WHERE seq > ? ORDER BY seq", (seq,)).fetchall()

    def events_after(self, seq: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        with self._lock:
            return self._db.execute(
                "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, -1 if limit is None else limit)
            ).fetchall()

    def save_snapshot(self, input_seq: int, event_seq: int, state: bytes) -> None:
        """Keep `state` as the only snapshot (the older ones are dropped in the same transaction)."""
        with self._transaction():
            self._db.execute("DELETE FROM snapshots")
            self._db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (input_seq, event_seq, state))

    def last_snapshot(self) -> tuple[int, int, bytes] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT input_seq, event_seq, state FROM snapshots ORDER BY input_seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def close(self) -> None:
        with self._lock:
            self._db.close()
