"""issue 15 acceptance (crash): a stream fed to `solvent serve` over HTTP, the server killed with SIGKILL mid-stream
and restarted on the same store, the feeder resending from the start: the log holds the events of a clean replay of
the same records, byte for byte, with contiguous sequence numbers, on SQLite and on PostgreSQL. The venue runs in
the server's engine process, which dies with the server."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import msgspec

from solvent.convert.inputs import load_portfolio
from solvent.formats.io import load_market
from solvent.service.auth import Role, add_key
from solvent.service.venue import Venue
from solvent.store.url import open_store
from solvent.stream.feed import FeedRecord, Quote

ROOT = Path(__file__).resolve().parents[1]
PORTFOLIO, MARKET = ROOT / "examples" / "portfolio.json", ROOT / "examples" / "market.json"
BATCH = 5  # records per POST: one venue batch each
RECORDS = 120


def _feed() -> list[FeedRecord]:
    """A falling walk of BTC and ETH quotes, one every 10 seconds after the examples' market time."""
    market = load_market(MARKET)
    prices = {name: quote.price for name, quote in market.assets.items() if name in ("BTC", "ETH")}
    records: list[FeedRecord] = []
    for i in range(RECORDS):
        asset = "BTC" if i % 2 == 0 else "ETH"
        prices[asset] *= math.exp(-0.004 + 0.006 * math.sin(i))
        time_i = market.time + timedelta(seconds=10 * (i + 1))
        records.append(Quote(seq=i, time=time_i, asset=asset, price=round(prices[asset], 2)))
    return records


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(store: str, keys: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "solvent", "serve", "--portfolio", str(PORTFOLIO), "--market", str(MARKET)]
    command += ["--keys", str(keys), "--port", str(port), "--store", store, "--insurance-fund", "50000"]
    server = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2).close()
            return server
        except (OSError, urllib.error.URLError):
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether process `pid` has exited (or is a zombie) within `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _post(port: int, key: str, records: list[FeedRecord]) -> None:
    body = b"".join(msgspec.json.encode(r) + b"\n" for r in records)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/records/bulk",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status in (200, 201)


def _crash_and_resume(store: str, tmp_path: Path) -> list[bytes]:
    keys = tmp_path / "keys.json"
    feeder = add_key(keys, "feed", Role.FEEDER)
    records = _feed()
    chunks = [records[k : k + BATCH] for k in range(0, len(records), BATCH)]
    port = _free_port()
    server = _serve(store, keys, port)
    engine = _children(server.pid)  # the venue's engine process (and multiprocessing's resource tracker)
    try:
        assert engine
        for chunk in chunks[: len(chunks) // 2]:
            _post(port, feeder, chunk)
    finally:
        server.send_signal(signal.SIGKILL)  # mid-stream: no shutdown, no flush
        server.wait(timeout=30)
    assert all(_gone(pid) for pid in engine)  # it died with the server: nothing writes to the store any more
    port = _free_port()
    server = _serve(store, keys, port)
    try:
        for chunk in chunks:  # the feeder resends everything: what the venue has seen is skipped
            _post(port, feeder, chunk)
    finally:
        server.terminate()
        server.wait(timeout=30)
    opened = open_store(store)
    try:
        logged = [data for _, data in opened.events_after(-1)]
        seqs = [seq for seq, _ in opened.events_after(-1)]
        inputs = [seq for seq, _ in opened.inputs_after(-1)]
    finally:
        opened.close()
    assert seqs == list(range(len(seqs)))  # none lost, none twice
    assert inputs == [r.seq for r in records]
    return logged


def _clean_replay() -> list[bytes]:
    venue = Venue.start(load_portfolio(PORTFOLIO), load_market(MARKET), insurance_fund=50_000.0)
    records = _feed()
    for k in range(0, len(records), BATCH):
        venue.ingest(records[k : k + BATCH])
    return [msgspec.json.encode(e) for e in venue.events_after(-1)]


def test_sqlite_server_killed_mid_stream_resumes_as_a_clean_replay(tmp_path: Path) -> None:
    logged = _crash_and_resume(f"sqlite:///{tmp_path / 'service.sqlite'}", tmp_path)
    clean = _clean_replay()
    assert len(clean) > 10
    assert logged == clean


def test_postgres_server_killed_mid_stream_resumes_as_a_clean_replay(tmp_path: Path, postgres_url: str) -> None:
    assert _crash_and_resume(postgres_url, tmp_path) == _clean_replay()
