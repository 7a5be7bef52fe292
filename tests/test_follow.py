"""Issue 15 item 2: `solvent stream --follow`, a live feed read as it arrives (solvent.stream.follow).

The twin is the replay: the records a follower applied give the events and summary of `solvent stream` replaying
the same file, byte for byte. The follower is run as a real process (stdin a pipe, or a file that grows while it
runs, stopped by SIGTERM), since signals and pipes are what the mode is for.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner

import solvent
from solvent.cli import main
from solvent.errors import InputError
from solvent.stream.feed import Deposit, FeedRecord, Quote
from solvent.stream.feedio import decode_record, write_feed
from solvent.stream.follow import Lines
from solvent.stream.replay import ReplayFiles, replay

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
START = ["--accounts", str(EXAMPLES / "portfolio.json"), "--market", str(EXAMPLES / "market.json")]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and signals")


def crash_feed(n: int) -> list[FeedRecord]:
    """BTC and ETH falling 30% over `n` records, one every 10 s; every tenth a deposit to an unknown account, whose
    refusal (an event caused by that record) marks how far a follower has come."""
    start = solvent.load_market(EXAMPLES / "market.json").time
    rng = np.random.default_rng(5)
    records: list[FeedRecord] = []
    for i in range(n):
        at = start + timedelta(seconds=10 * (i + 1))
        if i % 10 == 9:
            records.append(Deposit(seq=i, time=at, account="nobody", asset="USDC", amount=1.0))
            continue
        asset, price = ("BTC", 95_000.0) if i % 2 else ("ETH", 3_400.0)
        move = math.log(0.7) * (i + 1) / n + float(rng.normal(0.0, 0.002))
        records.append(Quote(seq=i, time=at, asset=asset, price=round(price * math.exp(move), 2)))
    return records


def replayed(tmp_path: Path, records: list[FeedRecord]) -> tuple[bytes, dict[str, object]]:
    """The events file and summary of `solvent stream` replaying `records` (the reference)."""
    folder = tmp_path / "replay"
    folder.mkdir()
    write_feed(folder / "feed.ndjson", records)
    files = ReplayFiles(
        feed=str(folder / "feed.ndjson"),
        events=str(folder / "events.ndjson"),
        summary=str(folder / "summary.json"),
        accounts=str(EXAMPLES / "portfolio.json"),
        market=str(EXAMPLES / "market.json"),
    )
    summary = replay(files)
    return (folder / "events.ndjson").read_bytes(), summary


def lines_of(records: list[FeedRecord]) -> list[bytes]:
    return [msgspec.json.encode(r) + b"\n" for r in records]


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], limit_s: float = 120.0) -> None:
    """Poll until `condition()` holds: fail if the process ends first or the limit passes."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the follower never got there"
        time.sleep(0.02)


def solvent_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "solvent", "stream", *START, "--follow", *args]


# ------------------------------------------------------------------------------------------------ reading lines


def test_a_pipe_gives_complete_lines_a_partial_line_waits_and_the_last_one_ends_the_input() -> None:
    read_end, write_end = os.pipe()
    try:
        chunks = Lines(read_end, threading.Event()).chunks()
        os.write(write_end, b"one\ntw")
        assert next(chunks) == [b"one"]
        os.write(write_end, b"o\nthree\nfo")
        assert next(chunks) == [b"two", b"three"]
        os.write(write_end, b"ur")
        os.close(write_end)
        assert list(chunks) == [[b"four"]]  # the end of the pipe completes the last line
    finally:
        os.close(read_end)


def test_a_growing_file_is_waited_on_and_a_stop_leaves_its_partial_line_unapplied(tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_bytes(b"one\n")
    stop = threading.Event()
    with open(path, "rb") as handle:
        lines = Lines(handle.fileno(), stop, poll_s=0.01)
        chunks = lines.chunks()
        assert next(chunks) == [b"one"]
        threading.Timer(0.1, lambda: path.write_bytes(b"one\ntwo\nthr")).start()
        assert next(chunks) == [b"two"]  # the end of a file is not the end of its feed
        stop.set()
        assert list(chunks) == []
        assert lines.pending == b"thr"


def test_a_regular_file_not_tailed_ends_at_its_end_with_its_last_line(tmp_path: Path) -> None:
    """Standard input redirected from a file (`--feed - < feed.ndjson`) ends where the file does."""
    path = tmp_path / "feed.ndjson"
    path.write_bytes(b"one\ntwo")
    with open(path, "rb") as handle:
        assert list(Lines(handle.fileno(), threading.Event(), tail=False).chunks()) == [[b"one"], [b"two"]]


def test_a_bad_line_names_its_record_and_line() -> None:
    with pytest.raises(InputError, match=r"^live\.ndjson: records\[4\] \(line 6\)\.price: Expected `float` >= 1e-12$"):
        decode_record(
            b'{"type":"quote","seq":9,"time":"2026-11-25T00:00:00Z","asset":"BTC","price":-1}', "live.ndjson", 4, 6
        )


# ----------------------------------------------------------------------------------------------- the command


def test_stdin_is_followed_to_its_end_with_the_events_of_a_replay_on_stdout(tmp_path: Path) -> None:
    records = crash_feed(60)
    expected, summary = replayed(tmp_path, records)
    process = subprocess.run(
        solvent_command("--feed", "-", "--events", "-", "--summary", str(tmp_path / "summary.json")),
        input=b"".join(lines_of(records)).rstrip(b"\n"),  # no newline after the last record
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout == expected
    got = json.loads((tmp_path / "summary.json").read_text())
    timings = {k for k in summary if "_ms" in k}  # wall-clock figures differ from run to run
    assert b"partial" not in process.stderr
    assert {k: got[k] for k in summary.keys() - timings - {"feed", "provenance"}} == {
        k: summary[k] for k in summary.keys() - timings - {"feed", "provenance"}
    }
    assert set(got["provenance"]["inputs"]) == {"accounts", "market"}  # not the feed: it grows as it is read
    assert b"LiquidationExecuted" in expected or b"MarginCallIssued" in expected  # the crash moved accounts


def test_a_growing_file_is_applied_as_it_arrives_stopped_by_sigterm_and_resumed(tmp_path: Path) -> None:
    """Events appear before the feed is complete; SIGTERM is a normal stop (exit 0, summary and state written, a
    half-written last line left unapplied); a follower resumed from that state on the same file skips what was
    applied and continues the events file: in all, the events of one replay."""
    records = crash_feed(60)
    expected, _ = replayed(tmp_path, records)
    lines = lines_of(records)
    feed, events, state = tmp_path / "live.ndjson", tmp_path / "events.ndjson", tmp_path / "state.npz"
    feed.write_bytes(b"".join(lines[:20]))
    args = ["--feed", str(feed), "--events", str(events), "--summary", str(tmp_path / "summary.json")]
    process = subprocess.Popen(solvent_command(*args, "--state-out", str(state)), stderr=subprocess.PIPE)
    try:
        wait_for(lambda: events.exists() and b'"cause":19' in events.read_bytes(), process)
        with open(feed, "ab") as handle:  # the rest arrives, the last line only half-written when the stop comes
            handle.write(b"".join(lines[20:40]) + lines[40][:25])
        wait_for(lambda: b'"cause":39' in events.read_bytes(), process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "stopped with a partial last line (25 bytes) unapplied" in stderr.decode()
    with open(feed, "ab") as handle:
        handle.write(lines[40][25:] + b"".join(lines[41:]))
    process = subprocess.Popen(
        [sys.executable, "-m", "solvent", "stream", "--follow", "--state-in", str(state), *args], stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: events.read_bytes().endswith(expected[-200:]), process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert events.read_bytes() == expected


def test_bad_input_stops_the_follower_after_the_events_of_the_records_before_it(tmp_path: Path) -> None:
    records = crash_feed(30)
    expected, _ = replayed(tmp_path, records[:20])
    feed, events = tmp_path / "live.ndjson", tmp_path / "events.ndjson"
    feed.write_bytes(
        b"".join(lines_of(records[:20])) + b'{"type":"quote","seq":20}\n' + b"".join(lines_of(records[21:]))
    )
    args = ["stream", *START, "--follow", "--feed", str(feed), "--events", str(events)]
    result = CliRunner().invoke(main, [*args, "--summary", str(tmp_path / "summary.json")])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {feed}: records[20] (line 21).time: required field is missing\n"
    assert events.read_bytes() == expected
    assert not (tmp_path / "summary.json").exists()


def test_a_starting_point_that_does_not_load_leaves_the_events_file_alone(tmp_path: Path) -> None:
    feed, events, accounts = tmp_path / "live.ndjson", tmp_path / "events.ndjson", tmp_path / "accounts.json"
    feed.write_bytes(b"")
    events.write_bytes(b"an earlier run's events\n")
    accounts.write_text('{"schema": "solvent.portfolio/1", "accounts": 3}')
    args = ["stream", "--accounts", str(accounts), "--market", str(EXAMPLES / "market.json"), "--follow"]
    result = CliRunner().invoke(main, [*args, "--feed", str(feed), "--events", str(events)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {accounts}: ")
    assert events.read_bytes() == b"an earlier run's events\n"
