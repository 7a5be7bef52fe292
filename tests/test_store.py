"""The stores behind the service (solvent.store): one contract, checked on the in-memory twin, SQLite and a real
PostgreSQL server (skipped, saying so, when the server is unreachable)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.errors import InputError
from solvent.store import MemoryStore, Store, StoreError
from solvent.store.sqlite import SqliteStore
from solvent.store.url import open_store

Opener = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the same store again on every call (a restart); the in-memory twin hands back the same object."""
    if request.param == "memory":
        store = MemoryStore()
        yield lambda: store
        return
    url = f"sqlite:///{tmp_path / 'venue.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened: list[Store] = []

    def reopen() -> Store:
        opened.append(open_store(url))
        return opened[-1]

    yield reopen
    for store in opened:
        store.close()


def test_the_log_reads_back_in_order_after_a_restart(opener: Opener) -> None:
    store = opener()
    assert store.inputs_after(-1) == [] and store.events_after(-1) == [] and store.last_snapshot() is None
    store.append([], [(0, b"opening")])
    store.append([(3, b'{"seq":3}'), (5, b"\x00\\\n\xff")], [(1, b"e1"), (2, b"e2")])
    store.append([(6, b"six")], [])
    again = opener()
    assert again.inputs_after(-1) == [(3, b'{"seq":3}'), (5, b"\x00\\\n\xff"), (6, b"six")]
    assert again.inputs_after(3) == [(5, b"\x00\\\n\xff"), (6, b"six")]
    assert again.events_after(0) == [(1, b"e1"), (2, b"e2")]
    assert again.events_after(-1, limit=2) == [(0, b"opening"), (1, b"e1")]
    assert again.events_after(2) == []


@pytest.mark.parametrize(
    ("inputs", "events"),
    [([(7, b"again")], []), ([], [(1, b"again")]), ([(8, b"new")], [(1, b"again")]), ([(9, b"x"), (9, b"y")], [])],
)
def test_a_sequence_number_already_logged_is_refused_and_nothing_of_its_append_written(
    opener: Opener, inputs: list[tuple[int, bytes]], events: list[tuple[int, bytes]]
) -> None:
    store = opener()
    store.append([(7, b"first")], [(0, b"e0"), (1, b"e1")])
    with pytest.raises(StoreError, match="already logged"):
        store.append(inputs, events)
    assert store.inputs_after(-1) == [(7, b"first")]
    assert store.events_after(-1) == [(0, b"e0"), (1, b"e1")]


def test_the_last_snapshot_is_the_one_kept(opener: Opener) -> None:
    store = opener()
    store.save_snapshot(-1, 4, b"opening state")
    store.save_snapshot(10, 20, b"\x00state\xff" * 1000)
    assert opener().last_snapshot() == (10, 20, b"\x00state\xff" * 1000)


@settings(max_examples=25, deadline=None)
@given(batches=st.lists(st.lists(st.binary(max_size=40), max_size=5), max_size=8))
def test_any_batches_read_back_as_appended_on_sqlite(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[bytes]]
) -> None:
    """Property: whatever bytes, in whatever batches, the log is their concatenation, numbered as written."""
    store = SqliteStore(tmp_path_factory.mktemp("prop") / "log.db")
    seq = 0
    for batch in batches:
        store.append([(seq + k, data) for k, data in enumerate(batch)], [])
        seq += len(batch)
    assert store.inputs_after(-1) == list(enumerate(data for batch in batches for data in batch))
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [("redis://localhost", "unknown store scheme 'redis'"), ("sqlite://", "a sqlite store needs a file")],
)
def test_a_url_the_resolver_cannot_open_is_an_input_error(url: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        open_store(url)


def test_the_resolver_opens_each_kind(tmp_path: Path, postgres_url: str) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    sqlite_store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(sqlite_store, SqliteStore) and (tmp_path / "a.db").is_file()
    sqlite_store.close()
    from solvent.store.postgres import PostgresStore

    postgres = open_store(postgres_url)
    assert isinstance(postgres, PostgresStore) and postgres.schema == postgres_url.rsplit("=", 1)[1]
    postgres.close()


def test_a_sqlite_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE solvent_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO solvent_meta VALUES ('schema', 'solvent.store/0')")
    db.close()
    with pytest.raises(StoreError, match=r"a solvent.store/0 store, expected solvent.store/1"):
        SqliteStore(path)


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "w.db").close()
    with sqlite3.connect(tmp_path / "w.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
