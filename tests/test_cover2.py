"""Cover 2 (CPMI-IOSCO PFMI 2012, Principle 4, key consideration 4.4; ../shared/REFERENCES.md): a hand-worked
venue, a brute-force twin one account and one scenario at a time, and the statement's figures re-derived from
`solvent margin`'s output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from small_venue import MARKET

from solvent.cli import main
from solvent.convert.inputs import load_portfolio, portfolio_to_book
from solvent.engine.margin import risk_context
from solvent.engine.riskarrays import build_risk_arrays
from solvent.engine.whatif import account_scenario_pnl
from solvent.formats.io import load_market
from solvent.formats.schemas import Account, Instrument, Portfolio, Position
from solvent.market.state import build_market_state
from solvent.params import MarginParams, McParams, ScenarioParams
from solvent.proof.cover2 import account_groups, cover2
from solvent.proof.leaves import to_units
from solvent.scenarios.base import ScenarioSet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PERP = Instrument(id="BTC-PERP", kind="perp", underlying="BTC")
PRICE = 95_000.0  # small_venue.MARKET's BTC

# account: (BTC-PERP quantity, parent): equity is given to `cover2` directly below.
HAND = {
    "A": (10.0, None),
    "A/sub": (1.0, "A"),
    "B": (-5.0, None),
    "C": (2.0, None),
    "D": (3.0, None),
    "E": (-4.0, None),
}
EQUITY = {"A": 50_000.0, "A/sub": 5_000.0, "B": 10_000.0, "C": 100_000.0, "D": 20_000.0, "E": 30_000.0}


def hand_book(names: tuple[str, ...] = tuple(HAND)):  # type: ignore[no-untyped-def]
    accounts = [
        Account(
            id=name,
            positions=[Position(instrument="BTC-PERP", quantity=HAND[name][0], entry_price=PRICE)],
            mode="isolated" if HAND[name][1] else "cross",
            parent=HAND[name][1],
        )
        for name in names
    ]
    return portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=[PERP], accounts=accounts))


def test_hand_worked_cover2() -> None:
    """BTC at 95,000 falls or rises 20% (19,000 a unit). Down: A loses 190,000 on 50,000 of equity (140,000
    uncovered), its sub-account 19,000 on 5,000 (14,000): group A 154,000; D 57,000 on 20,000 (37,000); C keeps
    62,000. Up: B 95,000 on 10,000 (85,000), E 76,000 on 30,000 (46,000). Cover 2 is the fall: 154,000 + 37,000
    = 191,000 against a fund of 100,000, a coverage ratio of 100,000 / 191,000."""
    book = hand_book()
    state = build_market_state([PERP], MARKET, MarginParams())
    btc = state.assets.index("BTC")
    moves = np.zeros((2, len(state.assets)))
    moves[:, btc] = (-0.2, 0.2)
    scenarios = ScenarioSet(
        name="hand",
        price_move=moves,
        vol_move=np.zeros_like(moves),
        pnl_weight=np.ones(2),
        group=np.zeros(2, dtype=np.int32),
        horizon_years=1 / 365,
        labels=("BTC -20%", "BTC +20%"),
    )
    arrays = build_risk_arrays(state, scenarios, 0.0)
    equity = np.array([EQUITY[a] for a in book.account_ids.tolist()])
    result = cover2(book, arrays, scenarios.labels, equity, 100_000.0)
    assert result.scenario == "BTC -20%"
    assert result.loss == pytest.approx(191_000.0, rel=1e-12)
    assert [(d.group, d.accounts) for d in result.defaulters] == [("A", ("A", "A/sub")), ("D", ("D",))]
    assert [d.uncovered_loss for d in result.defaulters] == pytest.approx([154_000.0, 37_000.0], rel=1e-12)
    assert result.coverage_ratio == pytest.approx(100_000.0 / 191_000.0, rel=1e-12)


def test_no_uncovered_loss_has_no_ratio() -> None:
    book = hand_book()
    state = build_market_state([PERP], MARKET, MarginParams())
    context = risk_context(state, MarginParams())
    result = cover2(book, context.arrays, context.scenarios.labels, np.full(book.n_accounts, 1e9), 5.0)
    assert (result.loss, result.defaulters, result.coverage_ratio) == (0.0, (), None)


def brute_force(book, arrays, equity):  # type: ignore[no-untyped-def]
    """(S,) the two largest groups' uncovered loss per scenario and (S,) their groups, one account at a time."""
    codes, names = account_groups(book.account_ids.tolist(), book.parent.tolist())
    by_group = np.zeros((len(names), arrays.n_scenarios))
    for n in range(book.n_accounts):
        part = slice(int(book.pos_offsets[n]), int(book.pos_offsets[n + 1]))
        pnl = account_scenario_pnl(book.pos_instrument[part], book.pos_quantity[part], arrays)
        for s in range(arrays.n_scenarios):
            by_group[codes[n], s] += max(0.0, -(equity[n] + pnl[s]))
    ranked = np.sort(by_group, axis=0)[::-1]
    return ranked[0] + (ranked[1] if len(names) > 1 else 0.0), [names[g] for g in np.argmax(by_group, axis=0)]


@pytest.mark.parametrize("method", ["grid", "mc"])
def test_cover2_matches_a_brute_force_twin(method: str) -> None:
    book = load_portfolio(EXAMPLES / "portfolio.json")
    params = MarginParams(scenarios=ScenarioParams(method=method, mc=McParams(n_scenarios=256)))
    state = build_market_state(list(book.instruments), load_market(EXAMPLES / "market.json"), params)
    context = risk_context(state, params)
    equity = np.linspace(-2_000.0, 1_000.0, book.n_accounts)  # thin equity: several accounts default
    result = cover2(book, context.arrays, context.scenarios.labels, equity, 10_000.0)
    per_scenario, largest = brute_force(book, context.arrays, equity)
    assert result.loss == pytest.approx(float(per_scenario.max()), rel=1e-9)
    assert result.loss > 0.0
    assert result.defaulters[0].group == largest[result.scenario_index]
    assert result.scenario == context.scenarios.labels[int(np.argmax(per_scenario))]


def test_the_statement_is_re_derived_from_the_margin_output(tmp_path: Path) -> None:
    """`solvent prove --portfolio` against `solvent margin --format json` on the same files: the committed
    totals are the rounded margin figures' exact sums, Cover 2 is the brute force on the margin output's equity."""
    runner = CliRunner()
    portfolio, market = str(EXAMPLES / "portfolio.json"), str(EXAMPLES / "market.json")
    margin_file = tmp_path / "margin.json"
    run = runner.invoke(
        main, ["margin", "--portfolio", portfolio, "--market", market, "--format", "json", "--out", str(margin_file)]
    )
    assert run.exit_code == 0, run.output
    run = runner.invoke(
        main,
        [
            "prove",
            "--portfolio",
            portfolio,
            "--market",
            market,
            "--insurance-fund",
            "2500",
            "--out",
            str(tmp_path / "proof"),
        ],
    )
    assert run.exit_code == 0, run.output
    statement = json.loads((tmp_path / "proof" / "statement.json").read_text())
    accounts = json.loads(margin_file.read_text())["accounts"]

    def units(field: str) -> list[int]:
        return [round(a[field] * 1_000_000) for a in accounts]

    equity, im, mm = units("equity"), units("im"), units("mm")
    assert statement["totals"] == {
        "equity": sum(max(e, 0) for e in equity),
        "deficit": sum(max(-e, 0) for e in equity),
        "im": sum(im),
        "mm": sum(mm),
        "shortfall": sum(max(m - e, 0) for e, m in zip(equity, mm, strict=True)),
    }
    assert statement["n_accounts"] == len(accounts)
    solvency = statement["solvency"]
    assert solvency["net_equity"] == pytest.approx(sum(a["equity"] for a in accounts), abs=1e-5)
    assert solvency["equity_over_mm"] == pytest.approx(
        sum(a["equity"] for a in accounts) / sum(a["mm"] for a in accounts)
    )
    assert solvency["shortfall"] == pytest.approx(sum(max(a["mm"] - a["equity"], 0.0) for a in accounts), abs=1e-5)
    assert to_units(np.array([solvency["insurance_fund"]]))[0] == 2_500_000_000

    book = load_portfolio(portfolio)
    params = MarginParams()
    state = build_market_state(list(book.instruments), load_market(market), params)
    context = risk_context(state, params)
    by_id = {a["account"]: a["equity"] for a in accounts}
    per_scenario, _ = brute_force(book, context.arrays, np.array([by_id[a] for a in book.account_ids.tolist()]))
    cover = statement["cover2"]
    assert cover["loss"] == pytest.approx(float(per_scenario.max()), rel=1e-9)
    assert cover["coverage_ratio"] == pytest.approx(2_500.0 / cover["loss"], rel=1e-12)
    assert sum(d["uncovered_loss"] for d in cover["defaulters"]) == pytest.approx(cover["loss"], rel=1e-12)


def test_cover2_does_not_depend_on_the_accounts_order() -> None:
    book = hand_book()
    state = build_market_state([PERP], MARKET, MarginParams())
    context = risk_context(state, MarginParams())
    equity = np.array([EQUITY[a] for a in book.account_ids.tolist()]) / 4.0
    first = cover2(book, context.arrays, context.scenarios.labels, equity, 1.0)
    order = [4, 2, 0, 5, 1, 3]
    reordered = hand_book(tuple(list(HAND)[k] for k in order))
    again = cover2(reordered, context.arrays, context.scenarios.labels, equity[order], 1.0)
    assert (again.scenario, [d.accounts for d in again.defaulters]) == (
        first.scenario,
        [d.accounts for d in first.defaulters],
    )
    assert again.loss == pytest.approx(first.loss, rel=1e-12)
    assert first.loss > 0.0
