"""Bad input: one line naming file, record and field; exit status 2; no traceback; no output file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from example_files import EXAMPLES, market, portfolio

from solvent.cli import main


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    keys = path.split(".")
    node: Any = document
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return document


def _dup_account() -> dict[str, Any]:
    doc = portfolio()
    doc["accounts"].append(dict(doc["accounts"][0]))
    return doc


# (case id, which file is bad, its text, words the one-line error must contain)
CASES = [
    ("malformed-json", "portfolio", '{"schema": "solvent.portfolio/1", "instruments": [', ["not valid JSON"]),
    ("empty-file", "portfolio", "", ["file is empty"]),
    (
        "unknown-schema-version",
        "market",
        json.dumps(_set(market(), "schema", "solvent.market/9")),
        ["schema", "solvent.market/9"],
    ),
    ("nan-price", "market", json.dumps(market()).replace('"price": 3400', '"price": NaN'), ["not valid JSON"]),
    (
        "inf-price",
        "market",
        json.dumps(market()).replace('"price": 3400', '"price": 1e999'),
        ["assets.ETH.price", "out of range"],
    ),
    ("negative-price", "market", json.dumps(_set(market(), "assets.ETH.price", -5)), ["assets.ETH.price", ">= 1e-12"]),
    (
        "unknown-instrument",
        "portfolio",
        json.dumps(_set(portfolio(), "accounts.3.positions.0.instrument", "BTC-XYZ")),
        ["accounts[3].positions[0].instrument", "unknown instrument 'BTC-XYZ'"],
    ),
    (
        "negative-strike",
        "portfolio",
        json.dumps(_set(portfolio(), "instruments.4.strike", -1)),
        ["instruments[4].strike", ">= 1e-12"],
    ),
    (
        "past-expiry",
        "portfolio",
        json.dumps(_set(portfolio(), "instruments.4.expiry", "2020-01-01T08:00:00Z")),
        ["instruments[4].expiry", "expired"],
    ),
    ("duplicate-account", "portfolio", json.dumps(_dup_account()), ["accounts[6].id", "duplicate account id 'alice'"]),
    (
        "unknown-field",
        "portfolio",
        json.dumps(_set(portfolio(), "accounts.0.colateral", {})),
        ["accounts[0].colateral: unknown field"],
    ),
    (
        "missing-entry-price",
        "portfolio",
        json.dumps(_set(portfolio(), "accounts.0.positions.0.entry_price", None)),
        ["accounts[0].positions[0].entry_price"],
    ),
]


@pytest.mark.parametrize(("case", "which", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_no_output(
    tmp_path: Path, case: str, which: str, text: str, expected: list[str]
) -> None:
    files = {"portfolio": EXAMPLES / "portfolio.json", "market": EXAMPLES / "market.json"}
    bad = tmp_path / f"{which}.json"
    bad.write_text(text)
    files[which] = bad
    out = tmp_path / "result.json"
    result = CliRunner().invoke(
        main,
        [
            "margin",
            "--portfolio",
            str(files["portfolio"]),
            "--market",
            str(files["market"]),
            "--format",
            "json",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {bad}"), lines[0]
    for word in expected:
        assert word in lines[0], lines[0]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [bad]  # no temporary file left behind


def test_real_process_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "market.json"
    bad.write_text(json.dumps(_set(market(), "assets.BTC.price", -1)))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "solvent",
            "margin",
            "--portfolio",
            str(EXAMPLES / "portfolio.json"),
            "--market",
            str(bad),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.strip() == f"error: {bad}: assets.BTC.price: Expected `float` >= 1e-12"


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["margin", "--portfolio", str(tmp_path / "nope.json"), "--market", str(EXAMPLES / "market.json")]
    )
    assert result.exit_code == 2
    assert "nope.json: No such file or directory" in result.stderr


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (TimeoutError(), "error: TimeoutError"),  # asyncio's and nats' timeouts carry no text
        (FileNotFoundError(2, "No such file or directory", "x.json"), "error: x.json: No such file or directory"),
        (ConnectionRefusedError("connect refused"), "error: connect refused"),
    ],
)
def test_an_os_error_is_one_line_that_says_something(error: OSError, line: str) -> None:
    """An OSError reaching the guard names its file where it has one, and its type where it has no text (a bare
    TimeoutError printed `error: :` before)."""
    import click

    from solvent.cli.guards import fail_cleanly

    @click.command()
    @fail_cleanly
    def failing() -> None:
        raise error

    result = CliRunner().invoke(failing, [])
    assert result.exit_code == 1
    assert result.output.strip() == line
