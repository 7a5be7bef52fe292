"""The PostgreSQL store (psycopg 3): the same tables as the SQLite store, in a schema of their own (default
`solvent`), so several venues, or parallel test runs, share one database. Appends go through COPY in one
transaction; sequence numbers are primary keys, so a duplicate is refused, never written twice. Tables:
docs/formats.md, "solvent.store/1"."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from solvent._extras import requires_extra
from solvent.store import STORE_SCHEMA, StoreError

with requires_extra("postgres"):
    import psycopg
    from psycopg import sql

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {}.solvent_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {}.inputs (seq BIGINT PRIMARY KEY, data BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {}.events (seq BIGINT PRIMARY KEY, data BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {}.snapshots (input_seq BIGINT PRIMARY KEY, event_seq BIGINT NOT NULL,"
    " state BYTEA NOT NULL)",
)


class PostgresStore:
    """A `Store` in PostgreSQL at `conninfo` (a postgresql:// URL or key=value string), its tables in `schema`
    (created on first use). Safe to share between threads: one connection, one lock, every method one
    transaction."""

    def __init__(self, conninfo: str, schema: str = "solvent") -> None:
        self.schema = schema
        self._lock = threading.Lock()
        self._db = psycopg.connect(conninfo)
        self._name = sql.Identifier(schema)
        with self._transaction() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._name))
            for table in _TABLES:
                cur.execute(sql.SQL(table).format(self._name))
            cur.execute(
                self._sql("INSERT INTO {}.solvent_meta VALUES ('schema', %s) ON CONFLICT DO NOTHING"), (STORE_SCHEMA,)
            )
            cur.execute(self._sql("SELECT value FROM {}.solvent_meta WHERE key = 'schema'"))
            row = cur.fetchone()
        if row is None or row[0] != STORE_SCHEMA:
            raise StoreError(f"postgresql schema {schema!r}: a {row and row[0]} store, expected {STORE_SCHEMA}")

    def _sql(self, query: str) -> sql.Composed:
        return sql.SQL(query).format(self._name)

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        """One transaction under the lock; a duplicate sequence number raised as a StoreError."""
        with self._lock:
            try:
                with self._db.transaction(), self._db.cursor() as cur:
                    yield cur
            except psycopg.errors.UniqueViolation as error:
                detail = " ".join(str(error).split())
                where = f"postgresql schema {self.schema!r}"
                raise StoreError(f"{where}: {detail} (a sequence number already logged)") from None

    def append(self, inputs: Sequence[tuple[int, bytes]], events: Sequence[tuple[int, bytes]]) -> None:
        with self._transaction() as cur:
            for table, rows in (("inputs", inputs), ("events", events)):
                if rows:
                    with cur.copy(self._sql(f"COPY {{}}.{table} (seq, data) FROM STDIN")) as copy:
                        for row in rows:
                            copy.write_row(row)

    def _rows(self, query: str, *args: int) -> list[tuple[int, bytes]]:
        with self._transaction() as cur:
            cur.execute(self._sql(query), args)
            return [(int(seq), bytes(data)) for seq, data in cur.fetchall()]  # type: ignore[call-overload]

    def inputs_after(self, seq: int) -> list[tuple[int, bytes]]:
        return self._rows("SELECT seq, data FROM {}.inputs WHERE seq > %s ORDER BY seq", seq)

    def events_after(self, seq: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        if limit is None:
            return self._rows("SELECT seq, data FROM {}.events WHERE seq > %s ORDER BY seq", seq)
        return self._rows("SELECT seq, data FROM {}.events WHERE seq > %s ORDER BY seq LIMIT %s", seq, limit)

    def save_snapshot(self, input_seq: int, event_seq: int, state: bytes) -> None:
        """Keep `state` as the only snapshot (the older ones are dropped in the same transaction)."""
        with self._transaction() as cur:
            cur.execute(self._sql("DELETE FROM {}.snapshots"))
            cur.execute(self._sql("INSERT INTO {}.snapshots VALUES (%s, %s, %s)"), (input_seq, event_seq, state))

    def last_snapshot(self) -> tuple[int, int, bytes] | None:
        with self._transaction() as cur:
            cur.execute(self._sql("SELECT input_seq, event_seq, state FROM {}.snapshots ORDER BY input_seq DESC"))
            row = cur.fetchone()
        return None if row is None else (int(row[0]), int(row[1]), bytes(row[2]))  # type: ignore[call-overload]

    def close(self) -> None:
        with self._lock:
            self._db.close()
