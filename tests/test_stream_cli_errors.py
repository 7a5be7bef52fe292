"""Issue 12 item 15: `solvent stream` names the files it was given; USD is always 1; days_per_year has a range.

On main: a bad instrument in the accounts file was reported as `error: <portfolio>: ...`; a market quoting USD at
0.5 was accepted and halved every USD balance (docs/formats.md: USD is always present at price 1);
`days_per_year: 1e308` made every time to expiry 0 and was blamed on an instrument's expiry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from example_files import EXAMPLES, market, portfolio

import solvent
from solvent.cli import main
from solvent.errors import InputError
from solvent.formats.schemas import MarketSnapshot
from solvent.params import params_from_json


def snapshot(document: dict[str, Any]) -> MarketSnapshot:
    return msgspec.json.decode(json.dumps(document).encode(), type=MarketSnapshot)


def stream(tmp_path: Path, accounts: Path, market_path: Path, params: Path | None = None) -> tuple[int, str]:
    feed = tmp_path / "feed.ndjson"
    feed.write_text("")
    args = ["stream", "--accounts", str(accounts), "--market", str(market_path), "--feed", str(feed)]
    args += ["--events", str(tmp_path / "out" / "events.ndjson"), "--summary", str(tmp_path / "out" / "summary.json")]
    if params is not None:
        args += ["--params", str(params)]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stderr


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def bad_underlying() -> dict[str, Any]:
    doc = portfolio()
    doc["instruments"][2]["underlying"] = "XRP"
    return doc


def expired() -> dict[str, Any]:
    doc = portfolio()
    doc["instruments"][4]["expiry"] = "2020-01-01T08:00:00Z"
    return doc


@pytest.mark.parametrize(
    ("document", "field"),
    [(bad_underlying, "instruments[2].underlying"), (expired, "instruments[4].expiry")],
    ids=["unknown-underlying", "expired"],
)
def test_stream_names_the_accounts_file(tmp_path: Path, document: Any, field: str) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps(document()))
    code, stderr = stream(tmp_path, accounts, EXAMPLES / "market.json")
    line = one_line(stderr)
    assert code == 2
    assert line.startswith(f"error: {accounts}: {field}: "), line
    assert "<portfolio>" not in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("command", ["margin", "stream"])
def test_usd_quoted_off_1_is_bad_input(tmp_path: Path, command: str) -> None:
    doc = market()
    doc["assets"]["USD"] = {"price": 0.5, "vol": 0.01}
    bad = tmp_path / "market.json"
    bad.write_text(json.dumps(doc))
    if command == "stream":
        code, stderr = stream(tmp_path, EXAMPLES / "portfolio.json", bad)
    else:
        args = ["margin", "--portfolio", str(EXAMPLES / "portfolio.json"), "--market", str(bad)]
        result = CliRunner().invoke(main, args)
        code, stderr = result.exit_code, result.stderr
    assert code == 2
    assert one_line(stderr) == f"error: {bad}: assets.USD.price: USD is the unit of account, always 1: got 0.5"


def test_usd_quoted_at_1_changes_nothing() -> None:
    """Quoting USD at 1 is allowed and gives the same figures as leaving it out (alice holds USD collateral)."""
    book = solvent.load_portfolio(EXAMPLES / "portfolio.json")
    plain = solvent.load_market(EXAMPLES / "market.json")
    doc = market()
    doc["assets"]["USD"] = {"price": 1.0, "vol": 0.01}
    quoted = snapshot(doc)
    a = solvent.compute_margin(book, plain)
    b = solvent.compute_margin(book, quoted)
    assert a.equity.tolist() == b.equity.tolist() and a.im.tolist() == b.im.tolist()


def test_usd_priced_from_oracle_sources_is_bad_input() -> None:
    doc = market()
    doc["assets"]["USD"] = {
        "price": 1.0,
        "vol": 0.01,
        "sources": [{"name": "x", "price": 0.5, "timestamp": doc["time"]}],
    }
    with pytest.raises(InputError, match=r"assets\.USD\.sources"):
        solvent.compute_margin(solvent.load_portfolio(EXAMPLES / "portfolio.json"), snapshot(doc))


@pytest.mark.parametrize("value", [1e308, 0.5, 1e-300, 1000.0])
@pytest.mark.parametrize("command", ["margin", "stream"])
def test_days_per_year_out_of_range_is_one_line_about_it(tmp_path: Path, command: str, value: float) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"schema": "solvent.params/1", "days_per_year": value}))
    if command == "stream":
        code, stderr = stream(tmp_path, EXAMPLES / "portfolio.json", EXAMPLES / "market.json", params)
    else:
        args = ["margin", "--portfolio", str(EXAMPLES / "portfolio.json"), "--market", str(EXAMPLES / "market.json")]
        result = CliRunner().invoke(main, [*args, "--params", str(params)])
        code, stderr = result.exit_code, result.stderr
    line = one_line(stderr)
    assert code == 2
    assert line.startswith(f"error: {params}: days_per_year: Expected `float` "), line
    assert "expir" not in line


@pytest.mark.parametrize("value", [250.0, 252.0, 360.0, 365.0, 365.25, 366.0])
def test_day_count_conventions_are_accepted(value: float) -> None:
    params = params_from_json(json.dumps({"days_per_year": value}))
    assert params.days_per_year == value
