"""issue 14 item 12: the library logs through `logging` (a service routes it); the CLI's own output is unchanged."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from test_stream import price_walk, run, venue

from solvent.cli import main
from solvent.stream import events as ev


def test_a_margin_run_and_a_stream_log_what_they_did(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="solvent")
    _, events = run(venue(), price_walk(40, seed=11, step=0.03))
    liquidations = [e for e in events if isinstance(e, ev.LiquidationExecuted)]
    assert liquidations
    infos = [r for r in caplog.records if r.name == "solvent.stream.engine" and r.levelno == logging.INFO]
    assert [r.getMessage().split(":")[0] for r in infos].count("LiquidationExecuted") == len(liquidations)
    batches = [r for r in caplog.records if r.getMessage().startswith("batch of")]
    assert len(batches) == 40


def test_the_cli_log_level_adds_log_lines_to_stderr_only(examples_dir, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    args = [
        "margin",
        "--portfolio",
        str(examples_dir / "portfolio.json"),
        "--market",
        str(examples_dir / "market.json"),
    ]
    plain = CliRunner().invoke(main, [*args, "--format", "json"])
    caplog.set_level(logging.DEBUG, logger="solvent")
    logged = CliRunner().invoke(main, ["--log-level", "debug", *args, "--format", "json"])
    assert plain.exit_code == logged.exit_code == 0
    assert logged.stdout == plain.stdout
    assert any(r.name == "solvent.engine.margin" and "margined 6 accounts" in r.getMessage() for r in caplog.records)
