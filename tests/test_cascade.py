"""The liquidation-cascade simulator and the stress comparison (`solvent.lab.cascade`, `lab.stress`, `solvent stress`).

Issue 5's acceptance: same seed, same numbers; a simulator with infinite depth and no jumps produces no bad debt;
`solvent stress` runs the episodes and the comparison and says where the multi-factor model loses.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from solvent.cli import main
from solvent.formats.schemas import Depth
from solvent.lab.cascade import (
    CascadeConfig,
    CascadeResult,
    PopulationSpec,
    PricePath,
    _Ewma,
    fill_distance,
    market_for,
    population,
    simulate,
)
from solvent.lab.episodes import load_episode
from solvent.lab.stress import episode_ids, run_episode, stress_findings
from solvent.market.depth import DepthCurve
from solvent.params import MarginParams

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ASSETS = ("BTC", "ETH")
PRICES = (60_000.0, 3_000.0)


def test_population_is_seeded_and_within_its_bounds() -> None:
    spec = PopulationSpec(n_accounts=5_000, leverage_max=50.0)
    book = population(ASSETS, PRICES, spec, seed=3)
    again = population(ASSETS, PRICES, spec, seed=3)
    np.testing.assert_array_equal(book.pos_quantity, again.pos_quantity)
    notional = np.abs(book.pos_quantity) * np.asarray(PRICES)[book.pos_instrument]
    leverage = notional / book.col_amount
    assert leverage.min() >= 1.0 - 1e-12 and leverage.max() <= 50.0 + 1e-9
    assert np.median(notional) == pytest.approx(spec.notional_median, rel=0.1)  # lognormal median, n = 5,000
    assert np.mean(book.pos_quantity > 0) == pytest.approx(spec.long_share, abs=0.03)


def test_fill_distance_walks_the_curve_by_hand() -> None:
    curve = DepthCurve.from_knots(np.array([0.0, 10.0, 30.0]), np.array([0.001, 0.01, 0.03]))
    assert fill_distance(curve, 5.0) == pytest.approx(0.001 + 0.009 * 0.5)
    assert fill_distance(curve, 20.0) == pytest.approx(0.01 + 0.02 * 0.5)
    assert fill_distance(curve, 40.0) == pytest.approx(0.03 + 0.001 * 10.0)  # the last slope beyond the book


def diffusive_path(seconds: float, step: float, drop: float, seed: int) -> PricePath:
    """A fall of `drop` over `seconds` with small Brownian noise, no jumps, constant depth."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, seconds + step, step)
    noise = np.cumsum(rng.normal(0.0, 0.0005, (t.size, 2)), axis=0)
    trend = np.log(1.0 - drop) * (t / t[-1])
    prices = np.asarray(PRICES) * np.exp(trend[:, None] + noise - noise[0])
    return PricePath(seconds=t, assets=ASSETS, prices=prices, depth=np.ones((t.size, 2)))


def test_infinite_depth_and_no_jumps_produce_no_bad_debt() -> None:
    """No book to walk (no depth inputs: closing costs nothing) and no impact, a continuous fall: every account
    is liquidated before its equity runs out, so nothing is left for the fund or the other traders."""
    market = market_for(ASSETS, PRICES, (0.5, 0.7), (None, None), NOW)
    book = population(ASSETS, PRICES, PopulationSpec(n_accounts=400, leverage_median=5.0, leverage_max=12.0), seed=5)
    path = diffusive_path(3600.0, 10.0, 0.3, seed=5)
    for model in ("multi", "static"):
        result = simulate(book, market, MarginParams(), path, CascadeConfig(block_seconds=10.0, impact=False), model)
        assert result.totals["accounts_liquidated"] > 20  # the fall does liquidate
        assert result.totals["bad_debt"] == 0.0
        np.testing.assert_array_equal(result.traded, result.exogenous)  # no impact without a book


def crash_market() -> tuple[object, object]:
    depth = [
        Depth(spread=0.0005, depth_1pct=20.0, depth_2pct=50.0),
        Depth(spread=0.0005, depth_1pct=400.0, depth_2pct=1000.0),
    ]
    return market_for(ASSETS, PRICES, (0.5, 0.7), depth, NOW), population(
        ASSETS, PRICES, PopulationSpec(n_accounts=300), seed=2
    )


@pytest.mark.parametrize("model", ["multi", "static"])
def test_watching_every_event_changes_no_result(model: str) -> None:
    """The simulator's engine watches only what the results read (no margin calls, first flags); the same run
    with every event watched gives the same numbers, series and totals."""
    market, book = crash_market()
    path = diffusive_path(900.0, 1.0, 0.35, seed=4)
    runs = [
        simulate(book, market, MarginParams(), path, CascadeConfig(all_events=full, factor_samples=3), model)  # type: ignore[arg-type]
        for full in (False, True)
    ]
    lean, full = runs
    assert lean.totals["accounts_liquidated"] > 0 and lean.totals["flagged"] > 0
    assert {k: v for k, v in lean.totals.items() if k != "accounts_remargined"} == {
        k: v for k, v in full.totals.items() if k != "accounts_remargined"
    }
    for name in ("traded", "liquidated", "fund", "bad_debt", "im_share"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name), err_msg=name)
    assert lean.factors.keys() == full.factors.keys()
    for name, values in lean.factors.items():
        np.testing.assert_array_equal(values, full.factors[name], err_msg=name)
    assert lean.totals["accounts_remargined"] < full.totals["accounts_remargined"]


def test_same_seed_same_numbers_and_liquidations_push_the_price_down() -> None:
    market, book = crash_market()
    path = diffusive_path(1800.0, 10.0, 0.35, seed=9)
    first = simulate(book, market, MarginParams(), path, CascadeConfig(block_seconds=10.0), "multi")  # type: ignore[arg-type]
    second = simulate(book, market, MarginParams(), path, CascadeConfig(block_seconds=10.0), "multi")  # type: ignore[arg-type]
    assert first.totals == second.totals
    np.testing.assert_array_equal(first.traded, second.traded)
    # The longs liquidated into the bid took the traded price below the path at some point.
    assert first.totals["max_impact"] > 0.0
    assert (first.traded[:, 0] < first.exogenous[:, 0]).any()


def test_a_stress_run_compares_the_models_and_says_where_multi_loses() -> None:
    run = run_episode(
        load_episode("2021-05-19"),
        ["static", "multi"],
        MarginParams(),
        spec=PopulationSpec(n_accounts=200),
        config=CascadeConfig(block_seconds=600.0),
        step_seconds=600.0,
        seed=4,
    )
    summary = run.summary()
    assert set(summary["models"]) == {"static", "multi"}
    for record in summary["models"].values():
        assert record["bad_debt"] >= 0.0 and 0.0 < record["capital_locked"] < 1.0
    sentences = stress_findings(summary)
    assert sentences[0].startswith("2021-05-19: least bad debt under")
    assert sentences[1].startswith(("Where multi loses:", "multi is not beaten here."))


def test_findings_name_what_multi_loses_on() -> None:
    summary = {
        "episode": "x",
        "models": {
            "static": {"bad_debt": 10.0, "capital_locked": 0.10, "accounts_liquidated": 5},
            "multi": {"bad_debt": 20.0, "capital_locked": 0.25, "accounts_liquidated": 9},
        },
    }
    assert stress_findings(summary)[1] == (
        "Where multi loses: static had less bad debt ($10 vs $20); static locked less capital (10.0% vs 25.0%); "
        "static liquidated fewer accounts (5 vs 9)."
    )


def test_cli_stress_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "stress"
    args = ["stress", "--episode", "2024-08-05", "--compare", "static,multi", "--accounts", "150", "--step", "900"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"][0]["episode"] == "2024-08-05" and summary["findings"]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6
    assert not math.isnan(summary["episodes"][0]["models"]["multi"]["capital_locked"])


@pytest.mark.parametrize(
    ("args", "message"), [(["--episode", "1929"], "unknown episode"), (["--compare", "magic"], "unknown model")]
)
def test_cli_stress_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["stress", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output


def test_same_seed_same_report_numbers(tmp_path: Path) -> None:
    """Issue 5's acceptance: two runs with the same seed write the same summary, byte for byte."""
    args = ["stress", "--episode", "2022-10-mango", "--compare", "static,multi", "--accounts", "80", "--step", "300"]
    for name in ("a", "b"):
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()


def test_scheduled_vol_updates_raise_the_requirement_in_a_crash() -> None:
    """Re-estimating vols from the traded path every 30 minutes (a `vol` record, a new epoch) lets the multi-factor
    requirement rise with the crash; with the snapshot's calm vol throughout it does not. The engine's EWMA, whose
    memory is a day's lambda, rises less within two hours than the old one-window realised vol (issue 13 item 2:
    the lab's hourly re-estimate from a few returns drove its requirement, not the model)."""
    market, book = crash_market()
    path = diffusive_path(7200.0, 60.0, 0.35, seed=9)
    params = MarginParams()

    def run(**config: object) -> CascadeResult:
        return simulate(book, market, params, path, CascadeConfig(block_seconds=60.0, **config))  # type: ignore[arg-type]

    fixed = run(vol_update_seconds=None)
    ewma = run(vol_update_seconds=1800.0)
    window = run(vol_update_seconds=1800.0, vol_estimator="window")
    assert window.im_share[-1] > fixed.im_share[-1] * 1.05
    assert fixed.im_share[-1] < ewma.im_share[-1] < window.im_share[-1]
    for updated in (ewma, window):
        np.testing.assert_array_equal(updated.im_share[:29], fixed.im_share[:29])  # identical before the first update


def test_the_simulators_ewma_is_the_recursion_at_the_cycle() -> None:
    """`_Ewma` against a plain loop: s2 <- lam s2 + (1 - lam) r^2 per cycle from the snapshot's vol, lam the daily
    lambda to the power of the cycle over a day, annualised over the cycle; carried across two folds."""
    params = MarginParams()
    returns = np.random.default_rng(1).normal(0.0, 0.002, (50, 2))
    ewma = _Ewma(np.array([0.5, 0.7]), params, 60.0)
    ewma.update(returns[:20])
    got = ewma.update(returns[20:])
    year = 60.0 / (365.0 * 86400.0)
    lam = 0.94 ** (60.0 / 86400.0)
    for j, vol in enumerate((0.5, 0.7)):
        s2 = vol**2 * year
        for r in returns[:, j].tolist():
            s2 = lam * s2 + (1.0 - lam) * r * r
        assert got[j] == pytest.approx(math.sqrt(s2 / year), rel=1e-12)


@pytest.mark.parametrize("episode", episode_ids())
def test_every_episode_of_the_library_runs_under_every_compared_model(episode: str) -> None:
    """Acceptance: `solvent stress` runs every episode and the comparison (here small: 60 traders, 5 min steps,
    fine enough for Mango's 15-minute pump)."""
    run = run_episode(
        load_episode(episode),
        ["static", "dydx", "multi"],
        MarginParams(),
        spec=PopulationSpec(n_accounts=60),
        config=CascadeConfig(block_seconds=300.0),
        step_seconds=300.0,
        seed=1,
    )
    summary = run.summary()
    assert set(summary["models"]) == {"static", "dydx", "multi"}
    for record in summary["models"].values():
        assert record["bad_debt"] >= 0.0 and math.isfinite(record["capital_locked"])
    assert len(stress_findings(summary)) == 2


def test_a_step_too_coarse_for_an_episode_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["stress", "--episode", "2022-10-mango", "--step", "3600", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "too coarse for MNGO" in result.output and result.output.count("\n") <= 2


def test_the_requirement_by_factor_adds_up_to_the_requirement() -> None:
    """The sampled breakdown: the IM terms of the whole venue, each over total notional, sum to IM / notional."""
    market, book = crash_market()
    path = diffusive_path(1800.0, 60.0, 0.2, seed=3)
    result = simulate(book, market, MarginParams(), path, CascadeConfig(block_seconds=60.0, factor_samples=5))  # type: ignore[arg-type]
    assert result.factor_seconds.size == 5 and "market_risk" in result.factors and "liquidity" in result.factors
    total = sum(result.factors.values())
    cycles = np.searchsorted(result.seconds, result.factor_seconds)
    np.testing.assert_allclose(total, result.im_share[cycles], rtol=1e-9)


def test_a_synthetic_market_day_runs_through_the_comparison(tmp_path: Path) -> None:
    """`solvent stress --episode none --synthetic HISTORY`: a market fitted to the history, simulated and stressed."""
    from solvent.market.history import write_history
    from solvent.market.synthetic import synthetic_history

    write_history(synthetic_history(900, seed=2), tmp_path / "history.csv")
    args = ["stress", "--episode", "none", "--synthetic", str(tmp_path / "history.csv"), "--hours", "2"]
    args += ["--compare", "static,multi", "--accounts", "100", "--step", "300", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (run,) = summary["episodes"]
    assert run["episode"] == "synthetic" and set(run["models"]) == {"static", "multi"}
    assert summary["settings"]["hours"] == 2.0
