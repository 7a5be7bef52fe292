"""Durable venues (issue 15 item 4): a venue restored from its store (last snapshot + the log's tail) equals a
clean replay of the same records, whatever the commit and snapshot policy and wherever the previous process
stopped; a record re-sent after the restart changes nothing; a process killed with SIGKILL mid-stream and run
again on the same store ends where one clean run ends (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from small_venue import INSTRUMENTS
from test_stream import market, price_walk, run, venue

from solvent.cli import main
from solvent.convert.inputs import load_portfolio
from solvent.errors import InputError
from solvent.formats.io import load_market
from solvent.formats.schemas import Account, Portfolio, Position
from solvent.params import MarginParams
from solvent.service.venue import Venue
from solvent.store import MemoryStore, Store, StoreError
from solvent.store.url import open_store
from solvent.stream.engine import StreamEngine
from solvent.stream.feed import FeedRecord
from solvent.stream.feedio import write_feed

ROOT = Path(__file__).resolve().parents[1]
TIMINGS = ("batch_ms_median", "batch_ms_p99", "batch_ms_max")
FUND = 50_000.0


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'venue.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def reopen(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens the store again on each call, as a restarted process would (the in-memory twin: the same object)."""
    opened: list[Store] = []
    memory = MemoryStore()

    def again() -> Store:
        opened.append(memory if store_url == "memory://" else open_store(store_url))
        return opened[-1]

    yield again
    for store in opened:
        store.close()


def encoded(events: object) -> list[bytes]:
    return [msgspec.json.encode(e) for e in events]  # type: ignore[attr-defined]


def logged(store: Store) -> list[bytes]:
    rows = store.events_after(-1)
    assert [seq for seq, _ in rows] == list(range(len(rows)))  # contiguous, from the opening's first
    return [data for _, data in rows]


def assert_same_state(restored: StreamEngine, clean: StreamEngine) -> None:
    drop = set(TIMINGS)
    assert {k: v for k, v in restored.summary().items() if k not in drop} == {
        k: v for k, v in clean.summary().items() if k not in drop
    }
    for name in ("equity", "im", "mm", "status"):
        np.testing.assert_array_equal(getattr(restored.figures, name), getattr(clean.figures, name))
    assert restored.fund == clean.fund


@pytest.mark.parametrize(
    ("commit_every", "snapshot_every", "stop"),
    [(1, None, 23), (1, 10, 23), (3, 10, 31), (4, 7, 40), (2, 1000, 12)],
)
def test_a_restarted_venue_equals_a_clean_replay(
    reopen: Callable[[], Store], commit_every: int, snapshot_every: int | None, stop: int
) -> None:
    """The first process stops after `stop` records without committing what it holds; the second restores from
    the store and is sent every record again, from the first: the seen ones change nothing."""
    records = price_walk(60, seed=11, step=0.03)
    clean, expected = run(venue(), records)
    options = {"commit_every": commit_every, "snapshot_every": snapshot_every, "insurance_fund": FUND}
    first = Venue.open(reopen(), venue(), market(), MarginParams(), **options)  # type: ignore[arg-type]
    for k in range(0, stop, 5):
        first.ingest(records[k : min(k + 5, stop)])
    second = Venue.open(reopen(), venue(), market(), MarginParams(), **options)  # type: ignore[arg-type]
    durable = second.engine.last_input_seq
    assert stop - 1 - 5 * (commit_every - 1) <= durable <= stop - 1  # at most commit_every - 1 batches lost
    for k in range(0, len(records), 5):
        second.ingest(records[k : k + 5])
    assert second.ingest(records[:30]) == []
    second.commit()
    assert logged(second.store) == encoded(expected)
    assert_same_state(second.engine, clean)
    third = Venue.open(reopen(), venue(), market(), MarginParams(), **options)  # type: ignore[arg-type]
    assert_same_state(third.engine, clean)


@functools.cache
def clean_walk() -> tuple[list[FeedRecord], StreamEngine, list[bytes]]:
    records = price_walk(40, seed=13, step=0.03)
    clean, expected = run(venue(), records)
    return records, clean, encoded(expected)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    commit_every=st.integers(1, 6),
    snapshot_every=st.one_of(st.none(), st.integers(1, 25)),
    cuts=st.lists(st.integers(1, 39), min_size=1, max_size=3),
    size=st.integers(1, 9),
)
def test_any_policy_any_crashes_restore_to_the_clean_replay(
    commit_every: int, snapshot_every: int | None, cuts: list[int], size: int
) -> None:
    """Property: however often the process stops (each time losing what it had not committed) and whatever it
    re-sends (everything from the start, in batches of `size`), the log and the state end as one clean run's."""
    records, clean, expected = clean_walk()
    store = MemoryStore()
    for stop in [*sorted(cuts), len(records)]:
        service = Venue.open(
            store, venue(), market(), commit_every=commit_every, snapshot_every=snapshot_every, insurance_fund=FUND
        )
        for k in range(0, stop, size):
            service.ingest(records[k : min(k + size, stop)])
    service.commit()
    assert logged(store) == expected
    assert_same_state(service.engine, clean)


def test_a_timed_snapshot_policy_snapshots_at_each_ingest_past_its_period() -> None:
    records = price_walk(9, seed=3)
    store = MemoryStore()
    service = Venue.open(store, venue(), market(), snapshot_seconds=0.0, insurance_fund=FUND)
    for k in range(0, 9, 3):
        service.ingest(records[k : k + 3])
        snapshot = store.last_snapshot()
        assert snapshot is not None and snapshot[:2] == (k + 2, service.engine.next_seq - 1)


def test_a_venue_started_without_a_snapshot_restores_from_its_whole_log_and_refuses_another_book(
    reopen: Callable[[], Store],
) -> None:
    records = price_walk(30, seed=5, step=0.03)
    clean, expected = run(venue(), records)
    plain = Venue.start(venue(), market(), store=reopen(), insurance_fund=FUND)  # logs, never snapshots
    plain.ingest(records[:20])
    restored = Venue.open(reopen(), venue(), market(), insurance_fund=FUND)
    restored.ingest(records)
    assert logged(restored.store) == encoded(expected)
    assert_same_state(restored.engine, clean)
    with pytest.raises(StoreError, match="disagrees with its replay"):
        Venue.open(reopen(), venue(seed=4), market(), insurance_fund=FUND)


def test_uncommitted_events_are_read_with_the_committed_ones() -> None:
    store = MemoryStore()
    records = price_walk(12, seed=3, step=0.03)
    service = Venue.open(store, venue(), market(), commit_every=10, insurance_fund=FUND)
    opening = len(store.events_after(-1))
    got = service.ingest(records[:6]) + service.ingest(records[6:])
    assert len(store.events_after(-1)) == opening and store.inputs_after(-1) == []  # nothing committed yet
    assert encoded(service.events_after(opening - 1)) == encoded(got)
    assert encoded(service.events_after(opening - 1, limit=3)) == encoded(got[:3])
    service.close()
    assert [data for _, data in store.events_after(opening - 1)] == encoded(got)


class FailingOnce(MemoryStore):
    """The in-memory store whose `fail`-th append raises, as a lost connection would, and writes nothing."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.appends = 0
        self.fail = fail

    def append(self, inputs: Sequence[tuple[int, bytes]], events: Sequence[tuple[int, bytes]]) -> None:
        self.appends += 1
        if self.appends == self.fail:
            raise OSError("connection lost")
        super().append(inputs, events)


def test_a_failed_commit_is_written_by_the_next() -> None:
    records = price_walk(20, seed=11, step=0.03)
    _, expected = run(venue(), records)
    store = FailingOnce(fail=3)  # the opening events, the first batch, then the second batch fails
    service = Venue.start(venue(), market(), store=store, insurance_fund=FUND)
    service.ingest(records[:5])
    with pytest.raises(OSError, match="connection lost"):
        service.ingest(records[5:10])
    assert service.ingest(records[:10]) == []  # applied, so skipped when re-sent
    service.ingest(records[10:])
    assert logged(store) == encoded(expected)
    assert [seq for seq, _ in store.inputs_after(-1)] == list(range(20))


@pytest.mark.parametrize("order", [[5, 3], [2, 2]])
def test_a_batch_out_of_order_is_refused_whole(order: list[int]) -> None:
    records = price_walk(8, seed=3)
    service = Venue.start(venue(), market(), insurance_fund=FUND)
    batch: list[FeedRecord] = [records[0], *(records[i] for i in order)]
    with pytest.raises(InputError, match=r"records\[2\]\.seq"):
        service.ingest(batch)
    assert service.engine.last_input_seq == -1 and service.store.inputs_after(-1) == []
    service.ingest(records)
    assert [seq for seq, _ in service.store.inputs_after(-1)] == list(range(8))


def test_ingest_with_a_store_url_it_cannot_open_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_feed(tmp_path / "feed.ndjson", price_walk(3, seed=1))
    (tmp_path / "market.json").write_bytes(msgspec.json.encode(market()))
    (tmp_path / "accounts.json").write_bytes(msgspec.json.encode(crash_venue(3)))
    args = ["ingest", "--store", "redis://localhost", "--feed", str(tmp_path / "feed.ndjson")]
    args += ["--accounts", str(tmp_path / "accounts.json"), "--market", str(tmp_path / "market.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    expected = "error: redis://localhost: unknown store scheme 'redis': one of memory, sqlite, postgresql, postgres\n"
    assert result.output == expected


# ------------------------------------------------------------------------------------- the crash (acceptance)


def crash_venue(n: int = 40, seed: int = 8) -> Portfolio:
    """Perpetual longs and shorts at 3x to 20x: the walk's drift liquidates some of them."""
    rng = np.random.default_rng(seed)
    accounts = []
    for k in range(n):
        btc = float(rng.choice([-1, 1]) * rng.uniform(0.2, 4.0))
        eth = float(rng.choice([-1, 1]) * rng.uniform(2.0, 40.0))
        notional = abs(btc) * 95_000.0 + abs(eth) * 3_400.0
        positions = [
            Position(instrument="BTC-PERP", quantity=btc, entry_price=95_000.0),
            Position(instrument="ETH-PERP", quantity=eth, entry_price=3_400.0),
        ]
        collateral = {"USD": notional / float(rng.uniform(3.0, 20.0))}
        accounts.append(Account(id=f"c{k:02d}", collateral=collateral, positions=positions))
    return Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=accounts)


def ingest_command(folder: Path, url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "solvent",
        "ingest",
        *("--store", url, "--feed", str(folder / "feed.ndjson")),
        *("--accounts", str(folder / "accounts.json"), "--market", str(folder / "market.json")),
        *("--insurance-fund", str(FUND), "--batch", "10", "--commit-every", "3", "--snapshot-every", "250"),
        *("--summary", str(folder / "summary.json")),
    ]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_process_killed_mid_stream_and_restarted_ends_as_a_clean_replay(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'venue.db'}" if kind == "sqlite" else str(request.getfixturevalue("postgres_url"))
    records = price_walk(1500, seed=21, step=0.006)
    (tmp_path / "accounts.json").write_bytes(msgspec.json.encode(crash_venue()))
    (tmp_path / "market.json").write_bytes(msgspec.json.encode(market()))
    write_feed(tmp_path / "feed.ndjson", records)
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    errors = tmp_path / "first.err"
    with open(errors, "wb") as err:
        process = subprocess.Popen(ingest_command(tmp_path, url), env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 300
    seen = 0
    while seen < 300:  # wait for a good part of the feed, then kill it where it stands
        assert process.poll() is None, errors.read_text()
        assert time.monotonic() < deadline, "the first process logged too little in 300 s"
        time.sleep(0.05)
        store = open_store(url)
        seen = len(store.inputs_after(-1))
        store.close()
    process.send_signal(signal.SIGKILL)
    process.wait()
    store = open_store(url)
    killed_at = len(store.inputs_after(-1))
    assert 300 <= killed_at < len(records)  # killed mid-stream
    assert store.last_snapshot() is not None
    store.close()

    finish = subprocess.run(ingest_command(tmp_path, url), env=env, capture_output=True, check=False)
    assert finish.returncode == 0, finish.stderr.decode()

    book, snapshot = load_portfolio(tmp_path / "accounts.json"), load_market(tmp_path / "market.json")
    expected: list[object] = []
    clean = StreamEngine.start(book, snapshot, MarginParams(), sink=expected.extend, insurance_fund=FUND)
    clean.process(records)
    store = open_store(url)
    assert logged(store) == encoded(expected)  # none lost, none twice, byte for byte
    assert [seq for seq, _ in store.inputs_after(-1)] == [r.seq for r in records]
    summary = msgspec.json.decode((tmp_path / "summary.json").read_bytes())
    clean_summary = clean.summary()
    assert {k: summary[k] for k in clean_summary if k not in TIMINGS} == {
        k: v for k, v in clean_summary.items() if k not in TIMINGS
    }
    assert clean_summary["liquidation_trades"] > 0  # the feed does liquidate: the events are not trivial
    restored = Venue.open(store, book, snapshot)
    assert_same_state(restored.engine, clean)
    store.close()
