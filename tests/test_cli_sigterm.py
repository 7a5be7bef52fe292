"""Issue 12 item 17, beyond `stream`: every command that writes outputs turns SIGTERM into a clean exit.

The command's library call is replaced by one that starts writing an output the way the library does
(`atomic_output`: a temporary file beside the target, renamed over it at the end) and then receives SIGTERM.
The command must exit with status 143 after one line on stderr, leaving neither the temporary file nor a
half-written output. `solvent stream` is checked on a real process in tests/test_stream_sigterm.py.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import solvent.api
import solvent.cli
import solvent.demo.crash
import solvent.demo.run
from solvent.cli.guards import TERMINATING, stop_if_terminated
from solvent.formats.io import atomic_output

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def terminated_while_writing(target: Path) -> Any:
    """A stand-in for a library call: opens `target` for an atomic write, writes, then is sent SIGTERM."""

    def call(*args: Any, **kwargs: Any) -> Any:
        with atomic_output(target) as tmp:
            Path(tmp).write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not interrupt the command")

    return call


@pytest.mark.parametrize(
    ("module", "attribute", "arguments"),
    [
        (solvent.demo.run, "run_demo", ["demo", "--out", "{out}"]),
        (solvent.demo.crash, "write_crash", ["crash", "--out", "{out}", "--n-accounts", "3"]),
        (
            solvent.api,
            "compute_margin",
            ["margin", "--portfolio", str(EXAMPLES / "portfolio.json"), "--market", str(EXAMPLES / "market.json")],
        ),
    ],
    ids=["demo", "crash", "margin"],
)
def test_sigterm_leaves_no_temporary_file(
    module: Any, attribute: str, arguments: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out" / "result.parquet"
    target.parent.mkdir()
    monkeypatch.setattr(module, attribute, terminated_while_writing(target))
    previous = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(solvent.cli.main, [a.format(out=target.parent) for a in arguments])
    assert result.exit_code == 143, result.output
    assert "terminated by SIGTERM" in result.stderr
    assert list(target.parent.iterdir()) == []  # no temporary file, no half-written output
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back


def test_a_swallowed_sigterm_still_stops_at_the_next_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library may clear the handler's exception (numba's dispatcher clears Python errors raised while it types
    its arguments); the command's loops then stop at their next `stop_if_terminated` check."""
    target = tmp_path / "result.parquet"

    def swallowing_call(*args: Any, **kwargs: Any) -> None:
        with atomic_output(target) as tmp:
            Path(tmp).write_bytes(b"half")
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            except BaseException:  # what the library does to the handler's exception
                pass
            stop_if_terminated()  # the next batch's check
            raise AssertionError("the check did not stop the command")

    monkeypatch.setattr(solvent.demo.run, "run_demo", swallowing_call)
    result = CliRunner().invoke(solvent.cli.main, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 143, result.output
    assert list(tmp_path.iterdir()) == []
    assert not TERMINATING.is_set()  # cleared when the command returns
