"""issue 14 item 8: tables fit the terminal, and a number is never cut: at 80 and 120 columns the margin and
backtest tables show whole the columns that fit, in order of priority, and name the ones left out."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from solvent.api import compute_margin
from solvent.console import print_backtest, print_margin
from solvent.convert.inputs import load_portfolio
from solvent.formats.io import load_market
from solvent.lab.margin_backtest import run_backtest
from solvent.market.synthetic import synthetic_history
from solvent.params import MarginParams

NUMBER = re.compile(r"-?[\d,]*\d(?:\.\d+)?%?")


def _render(print_table, document, width: int) -> str:  # type: ignore[no-untyped-def]
    console = Console(width=width, record=True, color_system=None)
    print_table(document, console)
    return console.export_text()


def _numbers(text: str) -> set[str]:
    table = text.split("└")[0]
    return {n for n in NUMBER.findall(table) if any(ch.isdigit() for ch in n)}


@pytest.mark.parametrize("width", [80, 120])
def test_the_margin_table_fits_and_cuts_no_number(examples_dir, width: int) -> None:  # type: ignore[no-untyped-def]
    result = compute_margin(load_portfolio(examples_dir / "portfolio.json"), load_market(examples_dir / "market.json"))
    narrow, wide = _render(print_margin, result, width), _render(print_margin, result, 400)
    assert max(len(line) for line in narrow.splitlines()) <= width
    assert "…" not in narrow
    assert _numbers(narrow) <= _numbers(wide)  # every number shown is one of the full table's, whole
    for figure in ("21,877.36", "-1,000.00", "10.836"):  # IM, equity and health always show
        assert figure in narrow
    assert "left out at this width" in narrow and "left out" not in wide


@pytest.mark.parametrize("width", [80, 120])
def test_the_backtest_table_fits_and_cuts_no_number(width: int) -> None:
    history = synthetic_history(300, seed=11)
    summary = run_backtest(history, ["static", "vol_only", "multi"], MarginParams(), assets=("BTC",)).summary()
    narrow, wide = _render(print_backtest, summary, width), _render(print_backtest, summary, 400)
    assert max(len(line) for line in narrow.splitlines()) <= width
    assert "…" not in narrow
    assert _numbers(narrow) <= _numbers(wide)
    for per_portfolio in summary["models"].values():  # the exception counts and zones always show
        for record in per_portfolio.values():
            backtest = record["backtest"]
            assert f"{backtest['exceptions']}/{backtest['observations']}" in narrow
            assert backtest["zone"] in narrow
