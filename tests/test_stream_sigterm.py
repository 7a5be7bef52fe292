"""Issue 12 item 17: SIGTERM mid-replay leaves no partial `.events.ndjson.<random>.tmp` behind.

On main the default SIGTERM action killed `solvent stream` at once and left the events' temporary file (and no
message). Now the command turns SIGTERM into a clean exit: the temporary files are removed, one line on stderr,
exit status 143 (128 + SIGTERM). A real process is started on a feed long enough to take minutes, signalled as
soon as its events' temporary file holds the opening events (the replay is then under way), and checked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import solvent
from solvent.stream.feed import Deposit, FeedRecord, Quote
from solvent.stream.feedio import write_feed

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
N_RECORDS = 100_000  # a few thousand records a second: the replay would run for tens of seconds


def long_feed(path: Path) -> None:
    """BTC quotes, every other record a deposit to an unknown account: its `InputRejected` event fills the events
    file's write buffer within the first hundred records, so a non-empty temporary file means the replay is on."""
    start = solvent.load_market(EXAMPLES / "market.json").time
    rng = np.random.default_rng(17)
    prices = 95_000.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, N_RECORDS)))
    records: list[FeedRecord] = []
    for i, p in enumerate(prices.tolist()):
        at = start + timedelta(seconds=i + 1)
        if i % 2:
            records.append(Deposit(seq=i, time=at, account="nobody", asset="USD", amount=1.0))
        else:
            records.append(Quote(seq=i, time=at, asset="BTC", price=round(p, 2)))
    write_feed(path, records)


def wait_for(condition: object, process: subprocess.Popen[bytes], limit_s: float) -> None:
    """Poll until `condition()` holds (not a fixed sleep): fail if the process ends first or the limit passes."""
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the replay never started"
        time.sleep(0.01)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_mid_replay_removes_the_temporary_files(tmp_path: Path) -> None:
    feed = tmp_path / "feed.ndjson"
    long_feed(feed)
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "solvent", "stream", "--accounts", str(EXAMPLES / "portfolio.json")]
    command += ["--market", str(EXAMPLES / "market.json"), "--feed", str(feed)]
    command += ["--events", str(out / "events.ndjson"), "--summary", str(out / "summary.json")]
    command += ["--state-out", str(out / "state.npz")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:

        def replaying() -> bool:
            return any(p.name.startswith(".events.ndjson.") and p.stat().st_size > 0 for p in out.iterdir())

        wait_for(replaying, process, limit_s=300.0)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM == 143, stderr
    assert stderr.decode().strip() == "error: terminated by SIGTERM: temporary files removed"
    assert sorted(p.name for p in out.iterdir()) == []  # no temporary file, and no half-written output


def test_the_command_restores_the_previous_handler(tmp_path: Path) -> None:
    """In process (CliRunner), the SIGTERM handler is the command's only while it runs."""
    from click.testing import CliRunner

    from solvent.cli import main

    feed = tmp_path / "feed.ndjson"
    feed.write_text("")
    before = signal.getsignal(signal.SIGTERM)
    args = ["stream", "--accounts", str(EXAMPLES / "portfolio.json"), "--market", str(EXAMPLES / "market.json")]
    args += ["--feed", str(feed), "--events", str(tmp_path / "e.ndjson"), "--summary", str(tmp_path / "s.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert signal.getsignal(signal.SIGTERM) is before
