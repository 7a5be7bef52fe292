"""Attribution (`solvent margin --explain`): the Euler allocation of the market-risk term.

Layers: the tail weights against the engine's reference risk measure (the numpy twin); contributions summing
to the engine's market-risk term for random books under every generator and measure; hedges offsetting;
finite differences of the engine's own number (Euler); the CLI on examples/.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from small_venue import INSTRUMENTS, LINEAR, NOW

import solvent
from solvent.api import compute_margin, explain_margin
from solvent.cli import main
from solvent.convert.inputs import portfolio_to_book
from solvent.engine.attribution import (
    Attribution,
    attribute_margin,
    position_contributions,
    position_pnl,
    rank_weights,
    tail_weights,
)
from solvent.engine.book import Book
from solvent.engine.kernel import scenario_pnl_numpy
from solvent.engine.measures import risk_measure_numpy
from solvent.engine.riskarrays import build_risk_arrays, scenario_risk_arrays
from solvent.formats.schemas import Account, AssetQuote, MarketSnapshot, Portfolio, Position
from solvent.market.state import build_market_state
from solvent.market.synthetic import synthetic_history
from solvent.params import MarginParams, ScenarioParams
from solvent.scenarios import generate_scenarios

MARKET = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={"BTC": AssetQuote(price=95_000, vol=0.5), "ETH": AssetQuote(price=3_400, vol=0.7)},
    rate=0.03,  # futures carry: their linear weight is not 1
)
METHODS = ["grid", "deribit", "mc", "fhs"]
MEASURES = ["es", "var", "worst"]
HISTORY = synthetic_history(1500, seed=7)  # BTC, ETH, SOL daily closes: FHS (and MC correlations)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PORTFOLIO = str(EXAMPLES / "portfolio.json")
MARKET_FILE = str(EXAMPLES / "market.json")


def params_for(method: str, measure: str = "es", confidence: float = 0.99) -> MarginParams:
    return MarginParams(measure=measure, confidence=confidence, scenarios=ScenarioParams(method=method))  # type: ignore[arg-type]


def account(name: str, positions: list[tuple[str, float]]) -> Account:
    return Account(
        id=name,
        collateral={"USD": 50_000.0},
        positions=[
            Position(instrument=inst, quantity=q, entry_price=95_000.0 if inst in LINEAR else None)
            for inst, q in positions
        ],
    )


def book_of(*books: list[tuple[str, float]]) -> Book:
    accounts = [account(f"acct-{n}", positions) for n, positions in enumerate(books)]
    return portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=accounts))


def explain(book: Book, params: MarginParams, name: str = "acct-0") -> Attribution:
    return explain_margin(book, MARKET, name, params, HISTORY)


def engine_market_risk(book: Book, params: MarginParams) -> np.ndarray:
    return compute_margin(book, MARKET, params, HISTORY).terms["market_risk"]


def contributions(attribution: Attribution) -> dict[str, float]:
    """Instrument -> contribution (the test books hold each instrument once)."""
    return {p.instrument: p.contribution for p in attribution.positions}


# ------------------------------------------------------------------ tail weights against the twin


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize(
    "sizes,confidence",
    [([256], 0.99), ([250], 0.99), ([100], 0.99), ([1000], 0.975), ([16, 16, 16], 0.99), ([16, 20], 0.9), ([7], 0.6)],
)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_tail_weights_reproduce_the_reference_measure(
    measure: str, sizes: list[int], confidence: float, ties: bool
) -> None:
    rng = np.random.default_rng(sum(sizes))
    n = sum(sizes)
    losses = rng.integers(-3, 4, n).astype(np.float64) * 100.0 if ties else rng.normal(10.0, 100.0, n)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    weights, values = tail_weights(losses, offsets, confidence, measure)
    for g in range(len(sizes)):
        group = slice(int(offsets[g]), int(offsets[g + 1]))
        reference = float(risk_measure_numpy(losses[np.newaxis, group], confidence, measure)[0])
        assert values[g] == pytest.approx(reference, rel=1e-13, abs=1e-10)
        assert float(weights[group] @ losses[group]) == pytest.approx(max(reference, 0.0), rel=1e-13, abs=1e-10)
    assert np.all(weights >= 0.0)


@pytest.mark.parametrize("measure", MEASURES)
def test_ties_go_to_the_lowest_scenario_index(measure: str) -> None:
    losses = np.array([1.0, 5.0, 2.0, 5.0, 5.0, 5.0, 0.0, 5.0, 3.0, 4.0] * 10)  # forty losses of 5.0
    weights, _ = tail_weights(losses, np.array([0, 100], dtype=np.int64), 0.96875, measure)  # m = 3.125 exactly
    expected = {"es": [1, 3, 4, 5], "var": [5], "worst": [1]}[measure]  # 5.0 at 1, 3, 4, 5, 7, 11, ...
    assert np.flatnonzero(weights).tolist() == expected


def test_a_group_that_never_loses_gets_no_weight() -> None:
    losses = np.concatenate([-np.arange(1.0, 17.0), np.arange(1.0, 17.0)])
    weights, values = tail_weights(losses, np.array([0, 16, 32], dtype=np.int64), 0.99, "es")
    assert values[0] == -1.0 and values[1] == 16.0
    assert np.flatnonzero(weights).tolist() == [31]


@pytest.mark.parametrize(
    "n,confidence,measure,expected",
    [
        (250, 0.99, "es", [0.4, 0.4, 0.2]),  # m = 2.5
        (200, 0.99, "es", [0.5, 0.5, 0.0]),  # m = 2: the third weight is (m - j)/m = 0
        (16, 0.99, "es", [1.0]),  # m < 1
        (250, 0.99, "var", [0.0, 0.0, 1.0]),
        (16, 0.99, "var", [1.0]),
        (250, 0.99, "worst", [1.0]),
    ],
)
def test_rank_weights_by_hand(n: int, confidence: float, measure: str, expected: list[float]) -> None:
    np.testing.assert_allclose(rank_weights(n, confidence, measure), expected, rtol=1e-12, atol=1e-15)


def test_position_rows_sum_to_the_twins_account_pnl() -> None:
    book = book_of([("BTC-SPOT", 1.5), ("BTC-FUT", -2.0), ("ETH-C", 4.0), ("BTC-P", -3.0), ("ETH-PERP", 7.0)])
    params = params_for("mc")
    state = build_market_state(list(book.instruments), MARKET, params, "<portfolio>", "<market>")
    arrays = build_risk_arrays(state, generate_scenarios(state, params), 1.0 / 1440.0 / 365.0)
    rows = position_pnl(book.pos_instrument, book.pos_quantity, arrays)
    twin = scenario_pnl_numpy(book.pos_offsets, book.pos_instrument, book.pos_quantity, arrays)
    np.testing.assert_allclose(rows.sum(axis=0), twin[0], rtol=1e-12, atol=1e-9)


# ------------------------------------------------------------- contributions sum to the engine's term

positions_strategy = st.lists(
    st.tuples(st.sampled_from([i.id for i in INSTRUMENTS]), st.floats(-20, 20).filter(lambda q: abs(q) > 1e-3)),
    min_size=1,
    max_size=6,
)


@pytest.mark.parametrize("confidence", [0.99, 0.9])
@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=10, deadline=None)
@given(books=st.lists(positions_strategy, min_size=1, max_size=4))
def test_contributions_sum_to_the_market_risk_term(
    method: str, measure: str, confidence: float, books: list[list[tuple[str, float]]]
) -> None:
    book = book_of(*books)
    params = params_for(method, measure, confidence)
    state = build_market_state(list(book.instruments), MARKET, params, "<portfolio>", "<market>")
    names = [str(a) for a in book.account_ids]
    explained = attribute_margin(book, state, params, names, HISTORY)
    totals = np.array([sum(p.contribution for p in a.positions) for a in explained])
    gross = np.array([sum(abs(p.contribution) for p in a.positions) for a in explained])
    reported = np.array([a.market_risk for a in explained])
    np.testing.assert_allclose(totals, reported, rtol=1e-9, atol=1e-12 * gross.max())
    # Against the fused kernel, which nets linear positions first: equal to rounding. Legs that cancel
    # (long 5 spot, short 5 perp) leave rounding of the legs' size, hence the tiny allowance on the gross.
    engine = engine_market_risk(book, params)
    np.testing.assert_allclose(totals, engine, rtol=1e-9, atol=1e-12 * gross.max() + 1e-9)
    np.testing.assert_allclose(
        [sum(a.contribution for a in x.assets) for x in explained], reported, rtol=1e-9, atol=1e-12 * gross.max()
    )
    for a in explained:
        assert [p.contribution for p in a.positions] == sorted((p.contribution for p in a.positions), reverse=True)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "positions",
    [[("BTC-PERP", 2.0)], [("ETH-PERP", -10.0)], [("BTC-C", -5.0)], [("BTC-P", 3.0)], [("BTC-FUT", -1.5)]],
    ids=["long-perp", "short-eth-perp", "short-call", "long-put", "short-future"],
)
def test_a_single_position_carries_the_whole_margin(method: str, positions: list[tuple[str, float]]) -> None:
    book = book_of(positions)
    params = params_for(method)
    (only,) = explain(book, params).positions
    assert only.contribution == pytest.approx(engine_market_risk(book, params)[0], rel=1e-12)
    assert only.share == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "positions", [[("BTC-SPOT", 3.0), ("BTC-PERP", -3.0)], []], ids=["spot-perp-hedge", "no-positions"]
)
def test_zero_margin_means_zero_contributions(method: str, positions: list[tuple[str, float]]) -> None:
    book = book_of(positions)
    params = params_for(method)
    assert engine_market_risk(book, params)[0] == 0.0
    attribution = explain(book, params)
    assert attribution.market_risk == 0.0
    assert [p.contribution for p in attribution.positions] == [0.0] * len(positions)
    assert all(math.isnan(p.share) for p in attribution.positions)
    assert attribution.tail == ()


# ------------------------------------------------------------------------------------------- hedges


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size", [0.5, 1.0, 4.0])
def test_a_short_perp_hedging_long_spot_offsets(method: str, size: float) -> None:
    book = book_of([("BTC-SPOT", size), ("BTC-PERP", -0.9 * size)])
    attribution = explain(book, params_for(method))
    c = contributions(attribution)
    assert c["BTC-SPOT"] > 0.0 > c["BTC-PERP"]
    assert c["BTC-PERP"] == pytest.approx(-0.9 * c["BTC-SPOT"], rel=1e-12)  # one delta, two signs
    assert [p.instrument for p in attribution.positions] == ["BTC-SPOT", "BTC-PERP"]  # driver first, offset last


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("puts", [0.5, 1.0])
def test_a_protective_put_offsets_a_long_perp(method: str, puts: float) -> None:
    book = book_of([("BTC-PERP", 1.0), ("BTC-P", puts)])
    attribution = explain(book, params_for(method))
    c = contributions(attribution)
    assert c["BTC-PERP"] > 0.0 > c["BTC-P"]
    assert attribution.positions[-1].share < 0.0


def test_per_asset_sums_and_tail_report() -> None:
    book = book_of([("BTC-PERP", 1.0), ("BTC-P", 1.0), ("ETH-PERP", -20.0), ("ETH-C", 10.0)])
    attribution = explain(book, params_for("mc"))
    by_asset = {a.asset: a.contribution for a in attribution.assets}
    c = contributions(attribution)
    assert by_asset["BTC"] == pytest.approx(c["BTC-PERP"] + c["BTC-P"], rel=1e-12)
    assert by_asset["ETH"] == pytest.approx(c["ETH-PERP"] + c["ETH-C"], rel=1e-12)
    # n draws at 99% in each group (the joint draws, then each asset alone: the stress, issue 12 item 7):
    # m = n / 100, floor(m) scenarios at 1/m and one at (m - floor(m))/m per group, losses descending in a group.
    n = attribution.n_scenarios // 3
    m = n * 0.01
    whole = math.floor(m)
    per_group = [1 / m] * whole + [(m - whole) / m]
    weights = [t.weight for t in attribution.tail]
    assert weights == pytest.approx(per_group * 3, rel=1e-12)
    assert [t.label[:3] for t in attribution.tail] == ["mc "] * len(weights)
    losses = [t.loss for t in attribution.tail]
    k = len(per_group)
    for group in range(3):
        assert losses[k * group : k * group + k] == sorted(losses[k * group : k * group + k], reverse=True)
    assert sum(t.weight * t.loss for t in attribution.tail) == pytest.approx(attribution.market_risk, rel=1e-12)


# ------------------------------------------------------------------------------- Euler, by differences


SMOOTH_BOOK = [("BTC-PERP", 1.5), ("BTC-P", 2.0), ("BTC-C", -1.0), ("ETH-PERP", -12.0), ("ETH-C", 8.0)]


@pytest.fixture(scope="module")
def smooth_case() -> tuple[MarginParams, Attribution]:
    params = params_for("mc")
    return params, explain(book_of(SMOOTH_BOOK), params)


@pytest.mark.parametrize("position", range(len(SMOOTH_BOOK)), ids=[name for name, _ in SMOOTH_BOOK])
def test_contribution_is_quantity_times_the_engines_derivative(
    smooth_case: tuple[MarginParams, Attribution], position: int
) -> None:
    """ES is homogeneous of degree 1: q_p dES/dq_p, by central differences of compute_margin, is C_p."""
    params, attribution = smooth_case
    eps = 1e-6

    def scaled(factor: float) -> float:
        positions = [(name, q * factor if k == position else q) for k, (name, q) in enumerate(SMOOTH_BOOK)]
        return float(engine_market_risk(book_of(positions), params)[0])

    derivative = (scaled(1.0 + eps) - scaled(1.0 - eps)) / (2.0 * eps)
    (mine,) = [p for p in attribution.positions if p.instrument == SMOOTH_BOOK[position][0]]  # canonical order
    assert mine.contribution == pytest.approx(derivative, rel=1e-6, abs=1e-7 * attribution.market_risk)


# ----------------------------------------------------------------------------------------- properties


def test_several_accounts_at_once_match_one_at_a_time() -> None:
    book = book_of([("BTC-PERP", 1.0)], SMOOTH_BOOK, [("ETH-C", -3.0), ("BTC-SPOT", 0.2)])
    params = params_for("fhs")
    state = build_market_state(list(book.instruments), MARKET, params, "<portfolio>", "<market>")
    together = attribute_margin(book, state, params, ["acct-2", "acct-1"], HISTORY)
    cleared: dict[str, dict[str, object]] = {"terms": {}, "add_ons_by_asset": {}, "marks": {}}
    alone = [dataclasses.replace(explain(book, params, n), **cleared) for n in ("acct-2", "acct-1")]  # type: ignore[arg-type]
    assert together == tuple(alone)  # explain_margin adds the terms; the attribution itself is the same


def test_inputs_are_not_mutated() -> None:
    book = book_of(SMOOTH_BOOK)
    before = (book.pos_offsets.copy(), book.pos_instrument.copy(), book.pos_quantity.copy(), book.pos_entry.copy())
    explain(book, params_for("grid"))
    after = (book.pos_offsets, book.pos_instrument, book.pos_quantity, book.pos_entry)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


def test_unknown_account_is_an_input_error() -> None:
    with pytest.raises(solvent.InputError, match="unknown account 'nobody'"):
        explain(book_of([("BTC-PERP", 1.0)]), params_for("grid"), "nobody")


def test_result_is_frozen() -> None:
    attribution = explain(book_of([("BTC-PERP", 1.0)]), params_for("grid"))
    with pytest.raises(AttributeError):
        attribution.market_risk = 0.0  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------ CLI


def cli(*extra: str) -> Result:
    return CliRunner().invoke(main, ["margin", "--portfolio", PORTFOLIO, "--market", MARKET_FILE, *extra])


def library(name: str) -> Attribution:
    return explain_margin(solvent.load_portfolio(PORTFOLIO), solvent.load_market(MARKET_FILE), name)


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("name", ["carol", "erin"])
def test_explain_table_orders_drivers_before_offsets(name: str) -> None:
    result = cli("--explain", name)
    assert result.exit_code == 0, result.output
    expected = library(name)
    rows = table_rows(result.stdout)[: len(expected.positions)]
    assert [row[1] for row in rows] == [p.instrument for p in expected.positions]
    assert [row[4] for row in rows] == [f"{p.contribution:,.2f}" for p in expected.positions]
    assert f"market_risk {expected.market_risk:,.2f}" in result.stdout
    for t in expected.tail:
        assert t.label in result.stdout


def test_explain_table_names_the_offset() -> None:
    rows = table_rows(cli("--explain", "carol").stdout)
    assert (rows[0][1], rows[0][6]) == ("BTC-26DEC26-110000-C", "driver")
    assert (rows[1][1], rows[1][6]) == ("BTC-26DEC26-80000-P", "offset")


@pytest.mark.parametrize("name", ["carol", "erin"])
def test_explain_json(name: str) -> None:
    result = cli("--explain", name, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    expected = library(name)
    assert document["schema"] == "solvent.explain/1"
    assert document["account"] == name
    assert document["market_risk"] == expected.market_risk  # bit for bit: the CLI only calls the library
    assert [p["instrument"] for p in document["positions"]] == [p.instrument for p in expected.positions]
    assert sum(p["contribution"] for p in document["positions"]) == pytest.approx(document["market_risk"], rel=1e-9)
    margin = json.loads(cli("--format", "json").stdout)
    (row,) = [a for a in margin["accounts"] if a["account"] == name]
    assert document["market_risk"] == pytest.approx(row["terms"]["market_risk"], rel=1e-12)


def test_explain_json_to_file(tmp_path: Path) -> None:
    out = tmp_path / "explain.json"
    result = cli("--explain", "erin", "--format", "json", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert msgspec.json.decode(out.read_bytes())["schema"] == "solvent.explain/1"


def test_explain_zero_margin_account_has_null_shares() -> None:
    document = json.loads(cli("--explain", "bob", "--format", "json").stdout)
    assert document["market_risk"] == 0.0
    assert [p["share"] for p in document["positions"]] == [None, None]
    assert document["tail"] == []


def test_explain_unknown_account_exits_2() -> None:
    result = cli("--explain", "x")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --explain: unknown account 'x'"
    assert result.stdout == ""


def test_explain_refuses_parquet(tmp_path: Path) -> None:
    out = tmp_path / "never.parquet"
    result = cli("--explain", "carol", "--format", "parquet", "--out", str(out))
    assert result.exit_code == 2
    assert "--explain prints table or json" in result.output
    assert not out.exists()


def test_explain_reports_every_term_and_add_ons_by_asset(examples_dir) -> None:  # type: ignore[no-untyped-def]
    """The explain view carries the account's IM terms (summing to its IM) and each add-on split by asset."""
    book = solvent.load_portfolio(examples_dir / "portfolio.json")
    market = solvent.load_market(examples_dir / "market.json")
    result = solvent.compute_margin(book, market)
    n = list(result.account_ids).index("erin")
    explained = solvent.explain_margin(book, market, "erin")
    assert explained.terms == {name: float(values[n]) for name, values in result.terms.items()}
    assert sum(explained.terms.values()) == pytest.approx(float(result.im[n]), rel=1e-12)
    liquidity = explained.add_ons_by_asset["liquidity"]
    assert set(liquidity) == {"BTC", "ETH"}
    assert sum(liquidity.values()) == pytest.approx(explained.terms["liquidity"], rel=1e-12)
    assert liquidity["BTC"] > 0.0 and liquidity["ETH"] > 0.0  # erin is short BTC futures and long ETH calls


@pytest.mark.parametrize("method", ["grid", "mc"])
@pytest.mark.parametrize("measure", MEASURES)
def test_contributions_of_many_accounts_at_once_equal_each_attribution(method: str, measure: str) -> None:
    """`position_contributions` (the liquidation sizer's greedy order) is `attribute_margin`, vectorised."""
    books = [
        [("BTC-PERP", 2.0), ("BTC-P", 3.0), ("ETH-PERP", -10.0)],
        [("BTC-C", -4.0), ("BTC-FUT", 1.0)],
        [("ETH-C", 5.0), ("ETH-PERP", -2.0), ("BTC-SPOT", 0.5), ("BTC-PERP", -0.5)],
        [("BTC-P", 1.0)],
    ]
    book = book_of(*books)
    params = params_for(method, measure)
    state = build_market_state(INSTRUMENTS, MARKET, params)
    _, arrays = scenario_risk_arrays(state, params)
    fast = position_contributions(
        book.pos_offsets, book.pos_instrument, book.pos_quantity, arrays, params.confidence, params.measure
    )
    for n in range(len(books)):
        (attribution,) = attribute_margin(book, state, params, [f"acct-{n}"])
        by_position = {c.position: c.contribution for c in attribution.positions}
        expected = [by_position[p] for p in range(len(books[n]))]
        got = fast[book.pos_offsets[n] : book.pos_offsets[n + 1]]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
