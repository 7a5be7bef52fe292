"""Backtests as a CCP runs them (EMIR RTS 153/2013 art. 49(1): each day, an ex-post comparison of observed
outcomes with the outcomes the margin model expects): the window (--from/--to, earlier history as warm-up),
the per-date output, the overlap of h-step windows and the worst point within the MPOR, each against a case
worked by hand; the size of the tests on a simulated correct model; the CLI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtri, xlogy
from scipy.stats import binom

from solvent.cli import main
from solvent.convert.inputs import load_portfolio
from solvent.formats.io import load_market
from solvent.lab.backtest import (
    backtest,
    binomial_law,
    kupiec_pof,
    overlap_law,
    rolling_zones,
    sample_dates,
    traffic_light,
    window_backtest,
)
from solvent.lab.backtest_dates import DATES_SCHEMA, date_table, write_dates
from solvent.lab.margin_backtest import NOTIONAL, run_backtest
from solvent.lab.portfolio_backtest import run_portfolio_backtest
from solvent.market.history import PriceHistory, write_history
from solvent.market.synthetic import synthetic_history
from solvent.params import MarginParams

# ------------------------------------------------------------------------------- overlap handling, by hand


def test_independent_windows_test_every_h_th_date_by_hand() -> None:
    """Ten daily 2-day losses: one 15% fall on day 3 shows in the windows of dates 1 and 2 (overlapping), but
    only in date 2's of the non-overlapping windows 0, 2, 4, 6, 8."""
    requirement = np.full(10, 10.0)
    loss = np.array([1.0, 15.0, 15.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert sample_dates(10, 2).tolist() == [0, 2, 4, 6, 8]
    assert sample_dates(10, 2, "overlapping").tolist() == list(range(10))
    independent = window_backtest(requirement, loss, 0.99, 2)
    overlapping = window_backtest(requirement, loss, 0.99, 2, windows="overlapping")
    assert (independent.observations, independent.exceptions) == (5, 1)
    assert (overlapping.observations, overlapping.exceptions) == (10, 2)
    assert (independent.windows, independent.mpor_steps, independent.kupiec.null) == ("independent", 2, "binomial")
    assert overlapping.kupiec.null == "simulated" and overlapping.traffic_light.law == "simulated"


def test_the_exact_binomial_p_value_by_hand() -> None:
    """0 exceptions in 250 at 99%: LR = -2 x 250 ln 0.99 = 5.025; the counts at least as unlikely under the
    LR are 0 and those from 7 on (LR(6) = 3.56 < 5.025 <= LR(7) = 5.9): p = P(N = 0) + P(N >= 7)."""

    def lr(n: int, t: int = 250, p: float = 0.01) -> float:
        rate = n / t
        return -2.0 * (xlogy(t - n, 1 - p) + xlogy(n, p) - xlogy(t - n, 1 - rate) - xlogy(n, rate))

    assert lr(6) < lr(0) <= lr(7)
    expected = binom.pmf(0, 250, 0.01) + binom.sf(6, 250, 0.01)
    result = kupiec_pof(0, 250, 0.99, law=binomial_law(250, 0.99))
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert not result.reject  # the chi-square reads p = 0.025 and rejects: the exact law does not
    assert kupiec_pof(0, 250, 0.99).reject


@settings(max_examples=25, deadline=None)
@given(t=st.integers(30, 1_500), coverage=st.sampled_from([0.95, 0.99, 0.995]))
def test_the_exact_test_never_rejects_a_correct_model_above_its_level(t: int, coverage: float) -> None:
    """Its size, sum of P(N = k) over the counts it rejects, computed exactly: at most 5% for every T (the
    chi-square's is not: 9.5% at T = 250, 99%)."""
    law = binomial_law(t, coverage)
    rejected = [k for k in range(t + 1) if kupiec_pof(k, t, coverage, law=law).reject]
    assert float(law.pmf[rejected].sum()) <= 0.05 + 1e-12


def test_the_simulated_law_of_one_step_windows_is_the_binomial() -> None:
    law = overlap_law(250, 0.99, 1, paths=40_000)
    exact = binom.pmf(np.arange(251), 250, 0.01)
    assert law.pmf.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(law.pmf[:10], exact[:10], atol=4.0 * math.sqrt(0.2 / 40_000))


def test_overlapping_windows_keep_the_mean_and_widen_the_law() -> None:
    """Each date still breaches with probability 1%, so E[N] = T p; their clustering widens the law."""
    law = overlap_law(500, 0.99, 2)
    counts = np.arange(501)
    mean = float(np.sum(counts * law.pmf))
    variance = float(np.sum((counts - mean) ** 2 * law.pmf))
    assert mean == pytest.approx(5.0, abs=0.05)
    assert variance > 1.15 * 500 * 0.01 * 0.99  # the binomial's variance, T p (1 - p)


def _correct_model_losses(paths: int, dates: int, h: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(paths, dates) h-step losses of a Gaussian random walk and its exact 99% requirement (dates,)."""
    rng = np.random.default_rng(seed)
    walk = np.concatenate((np.zeros((paths, 1)), np.cumsum(rng.standard_normal((paths, dates + h - 1)), axis=1)), 1)
    return walk[:, h:] - walk[:, :-h], np.full(dates, float(ndtri(0.99)) * math.sqrt(h))


def test_a_correct_model_is_rejected_near_the_nominal_rate_by_default() -> None:
    """Daily steps, 2-day MPOR, 1,000 dates at 99%: Kupiec's chi-square on every (overlapping) date rejects a
    correct model well above 5% (9.3% in benchmarks/bench_backtest_size.py); the default (non-overlapping
    windows, exact law) stays at or below it, and the simulated overlap-adjusted bounds near it."""
    paths = 1_000
    losses, requirement = _correct_model_losses(paths, 1_000, 2, seed=5)
    naive = np.mean([backtest(requirement, loss, 0.99).kupiec.reject for loss in losses])
    default = np.mean([window_backtest(requirement, loss, 0.99, 2).kupiec.reject for loss in losses])
    adjusted = np.mean(
        [window_backtest(requirement, loss, 0.99, 2, windows="overlapping").kupiec.reject for loss in losses]
    )
    se = math.sqrt(0.05 * 0.95 / paths)
    assert naive > 0.05 + 2.0 * se
    assert default <= 0.05 + 2.0 * se
    assert 0.05 - 3.0 * se <= adjusted <= 0.05 + 2.0 * se


def test_rolling_zone_of_the_last_250_by_hand() -> None:
    """Basel 250 days at 99%: green 0-4, yellow 5-9, red 10+. Five exceptions at 0, 10, 20, 30, 40: yellow
    from observation 249 (the first with 250 in) until the one at 0 leaves the window, at observation 250."""
    hits = np.zeros(260, dtype=bool)
    hits[[0, 10, 20, 30, 40]] = True
    zones = rolling_zones(hits, 0.99)
    assert zones[:249] == [None] * 249
    assert zones[249] == "yellow"
    assert zones[250:] == ["green"] * 10


@settings(max_examples=40, deadline=None)
@given(
    hits=st.lists(st.booleans(), min_size=250, max_size=300).map(np.array),
    windows=st.sampled_from(["independent", "overlapping"]),
)
def test_rolling_zones_are_the_traffic_light_of_each_last_250(hits: np.ndarray, windows: str) -> None:
    """The vectorised rolling zone against its slow twin: `traffic_light` on each slice of 250, with the
    count's law of the windows (binomial, or simulated for overlapping 2-day windows)."""
    zones = rolling_zones(hits, 0.99, 2, windows)  # type: ignore[arg-type]
    law = overlap_law(250, 0.99, 2) if windows == "overlapping" else None
    for i in range(249, hits.size):
        k = int(hits[i - 249 : i + 1].sum())
        assert zones[i] == traffic_light(k, 250, 0.99, law=law).zone


# ------------------------------------------------------------------------- the window and per-date output

FLAT = 100.0


def _hand_history() -> PriceHistory:
    """320 daily closes at 100, but for two falls of 8% after day 280 and 281 and a V after day 290 (-12%,
    then +14%): the 2-day losses of the reference 1,000,000 USD long and short are worked in the tests."""
    closes = np.full(320, FLAT)
    closes[281:] *= 0.92
    closes[282:] *= 0.92
    closes[291:] *= 0.88
    closes[292:] *= 1.14
    timestamps = np.datetime64("2019-01-01", "s") + np.arange(320) * np.timedelta64(86400, "s")
    return PriceHistory(timestamps, ("BTC",), closes[:, np.newaxis])


HAND = _hand_history()
DAY = HAND.timestamps


@pytest.fixture(scope="module")
def hand_run() -> object:
    """Static (IM 10% of notional) on the window from day 270 to day 305: dates 270 to 303 (t + 2 <= 305)."""
    return run_backtest(HAND, ["static"], MarginParams(), assets=("BTC",), start=DAY[270], end=DAY[305])


def test_the_window_by_hand(hand_run: object) -> None:
    run = hand_run
    assert run.dates[0] == DAY[270] and run.dates[-1] == DAY[303]  # type: ignore[attr-defined]
    assert run.summary()["window"] == {"from": "2019-09-28T00:00:00Z", "to": "2019-11-02T00:00:00Z"}  # type: ignore[attr-defined]
    assert [str(d) for d in DAY[[270, 305]]] == ["2019-09-28T00:00:00", "2019-11-02T00:00:00"]
    # Tested (non-overlapping 2-day windows): 270, 272, ..., 302.
    assert run.dates[run.tested].tolist() == DAY[270:304:2].tolist()  # type: ignore[attr-defined]


def test_a_window_is_the_whole_run_on_its_dates() -> None:
    """The estimators run causally over the whole history: a window's requirements are those of the run
    without one, on the same dates (the history before --from warms them up)."""
    history = synthetic_history(420, seed=11)
    whole = run_backtest(history, ["static", "vol_only", "multi"], MarginParams(), assets=("BTC",))
    window = run_backtest(
        history,
        ["static", "vol_only", "multi"],
        MarginParams(),
        assets=("BTC",),
        start=history.timestamps[340],
        end=history.timestamps[400],
    )
    rows = np.searchsorted(whole.dates, window.dates)
    assert window.dates[0] == history.timestamps[340] and window.dates[-1] == history.timestamps[398]
    for model in ("static", "vol_only", "multi"):
        np.testing.assert_array_equal(window.requirement[model], whole.requirement[model][:, rows])


def test_a_window_starting_inside_the_warm_up_starts_after_it() -> None:
    run = run_backtest(HAND, ["static"], MarginParams(), assets=("BTC",), start=DAY[10])
    assert run.dates[0] == DAY[251]  # the first close with a volatility, day 1, plus 250 returns


def test_a_window_too_short_is_refused() -> None:
    from solvent.errors import InputError

    with pytest.raises(InputError, match="in the window"):
        run_backtest(HAND, ["static"], MarginParams(), assets=("BTC",), start=DAY[280], end=DAY[300])


def test_end_of_window_and_path_losses_by_hand(hand_run: object) -> None:
    """Long: day 280's window holds both falls, 1 - 0.92^2 = 15.36%; day 289's the -12% (its end); day 290's
    ends at 0.88 x 1.14 = 1.0032 (a 0.32% gain) but its worst point, day 291, is a 12% loss. Short: day 291's
    window is the +14%."""
    run = hand_run
    col = {d: int(np.flatnonzero(run.dates == DAY[d])[0]) for d in (280, 289, 290, 291)}  # type: ignore[attr-defined]
    loss, path = run.loss, run.path_loss  # type: ignore[attr-defined]
    assert loss[0, col[280]] == pytest.approx(NOTIONAL * (1 - 0.92**2), rel=1e-12)
    assert loss[0, col[289]] == pytest.approx(NOTIONAL * 0.12, rel=1e-12)
    assert loss[0, col[290]] == pytest.approx(NOTIONAL * (1 - 0.88 * 1.14), rel=1e-9)
    assert path[0, col[290]] == pytest.approx(NOTIONAL * 0.12, rel=1e-12)
    assert loss[1, col[291]] == pytest.approx(NOTIONAL * 0.14, rel=1e-12)
    summary = run.summary()["models"]["static"]  # type: ignore[attr-defined]
    # Tested dates only (even days from 270): the long's end-of-window exception is day 280's; its path
    # exceptions days 280 and 290; the short's day-291 exception is on an untested date.
    assert summary["long BTC"]["exception_dates"] == [f"{DAY[280]}Z"]
    assert summary["long BTC"]["path"]["exception_dates"] == [f"{DAY[280]}Z", f"{DAY[290]}Z"]
    assert summary["short BTC"]["exception_dates"] == []
    assert summary["long BTC"]["backtest"]["exceptions"] == 1
    assert summary["long BTC"]["backtest"]["observations"] == 17
    assert summary["long BTC"]["zone_last_250"] is None  # 17 tested dates: no 250 yet


def test_per_date_rows_by_hand(hand_run: object, tmp_path: Path) -> None:
    csv_path, parquet_path = write_dates([hand_run], tmp_path)  # type: ignore[list-item]
    table = pcsv.read_csv(csv_path, convert_options=pcsv.ConvertOptions(column_types={"date": pa.string()})).to_pylist()
    assert len(table) == 34 * 2  # 34 dates x (long, short) x one model
    row = {(r["portfolio"], r["date"]): r for r in table}
    day280, day289, day291 = (f"{DAY[d]}Z" for d in (280, 289, 291))
    assert row[("long BTC", day280)]["price"] == FLAT
    assert row[("long BTC", day280)]["im"] == pytest.approx(0.10 * NOTIONAL)
    assert row[("long BTC", day280)]["loss"] == pytest.approx(NOTIONAL * (1 - 0.92**2))
    assert (row[("long BTC", day280)]["exception"], row[("long BTC", day280)]["tested"]) == (True, True)
    assert (row[("long BTC", day289)]["exception"], row[("long BTC", day289)]["tested"]) == (True, False)
    assert row[("short BTC", day291)]["side"] == "short" and row[("short BTC", day291)]["exception"]
    parquet = pq.read_table(parquet_path)
    assert parquet.schema.metadata[b"solvent.schema"] == DATES_SCHEMA.encode()
    assert parquet.column("loss").to_pylist() == pytest.approx([r["loss"] for r in table])
    assert parquet.num_rows == date_table(hand_run).num_rows  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- the CLI


def test_cli_window_windows_and_per_date_files(tmp_path: Path) -> None:
    write_history(HAND, tmp_path / "history.csv")
    out = tmp_path / "report"
    args = ["backtest", "--history", str(tmp_path / "history.csv"), "--models", "static", "--out", str(out)]
    args += ["--from", "2019-09-28", "--to", "2019-11-02", "--windows", "overlapping"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    (run,) = summary["runs"]
    assert (run["windows"], run["first_date"], run["observations"]) == ("overlapping", f"{DAY[270]}Z", 34)
    assert run["models"]["static"]["long BTC"]["exception_dates"] == [f"{DAY[280]}Z", f"{DAY[289]}Z"]
    assert (out / "dates.csv").exists() and (out / "dates.parquet").exists()
    assert "overlapping windows: 34 dates tested" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--columns", "time=date"], "--columns: close: missing"),
        (["--columns", "time=date,close=close"], "no column 'date'"),
        (["--windows", "sometimes"], "Invalid value for '--windows'"),
        (["--from", "2019-13-01"], "Invalid value for '--from'"),
    ],
)
def test_cli_bad_window_or_mapping_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    write_history(HAND, tmp_path / "history.csv")
    result = CliRunner().invoke(main, ["backtest", "--history", str(tmp_path / "history.csv"), *args])
    assert result.exit_code == 2
    assert message in result.output


# ------------------------------------------------------------------ the portfolio ("dirty") backtest

MARKET_TIME = "2026-11-25T00:00:00Z"
BOOK = {
    "schema": "solvent.portfolio/1",
    "instruments": [
        {"id": "BTC-PERP", "kind": "perp", "underlying": "BTC"},
        {"id": "ETH-PERP", "kind": "perp", "underlying": "ETH"},
        {
            "id": "BTC-C",
            "kind": "option",
            "underlying": "BTC",
            "expiry": "2026-12-25T00:00:00Z",
            "strike": 110000,
            "option_type": "call",
        },
    ],
    "accounts": [
        {
            "id": "long",
            "collateral": {"USDC": 1e6},
            "positions": [{"instrument": "BTC-PERP", "quantity": 10, "entry_price": 1e5}],
        },
        {
            "id": "short",
            "collateral": {"USDC": 1e6},
            "positions": [{"instrument": "BTC-PERP", "quantity": -10, "entry_price": 1e5}],
        },
        {"id": "call", "collateral": {"USDC": 1e6}, "positions": [{"instrument": "BTC-C", "quantity": -3}]},
        {
            "id": "eth",
            "collateral": {"USDC": 1e6},
            "positions": [{"instrument": "ETH-PERP", "quantity": 5, "entry_price": 3e3}],
        },
        {"id": "idle", "collateral": {"USDC": 1e3}, "positions": []},
    ],
}
MARKET = {
    "schema": "solvent.market/1",
    "time": MARKET_TIME,
    "assets": {
        "BTC": {"price": 1e5, "vol": 0.5},
        "ETH": {"price": 3e3, "vol": 0.7},
        "USDC": {"price": 1.0, "vol": 0.01},
    },
    "option_vols": {"BTC-C": 0.6},
}


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> object:
    folder = tmp_path_factory.mktemp("dirty")
    (folder / "portfolio.json").write_text(json.dumps(BOOK))
    (folder / "market.json").write_text(json.dumps(MARKET))
    book, market = load_portfolio(folder / "portfolio.json"), load_market(folder / "market.json")
    return run_portfolio_backtest(book, market, HAND, ["static"], MarginParams(), start=DAY[270], end=DAY[305])


def _black76_call(forward: float, strike: float, years: float, vol: float) -> float:
    """Black (1976) with zero rate: F N(d1) - K N(d2), written out here as the independent twin."""
    from scipy.stats import norm

    d1 = (math.log(forward / strike) + 0.5 * vol * vol * years) / (vol * math.sqrt(years))
    return forward * norm.cdf(d1) - strike * norm.cdf(d1 - vol * math.sqrt(years))


def test_the_dirty_perp_is_the_clean_reference_perp(dirty: object, hand_run: object) -> None:
    """10 BTC at 100,000 is the clean backtest's 1,000,000 USD reference perp: the same losses on the same
    dates (the history's moves, scale-free), and static's IM 10% of it."""
    run = dirty
    np.testing.assert_array_equal(run.dates, hand_run.dates)  # type: ignore[attr-defined]
    np.testing.assert_allclose(run.loss[:2], hand_run.loss, rtol=1e-12, atol=1e-6)  # type: ignore[attr-defined]
    np.testing.assert_allclose(run.path_loss[:2], hand_run.path_loss, rtol=1e-12, atol=1e-6)  # type: ignore[attr-defined]
    np.testing.assert_allclose(run.requirement["static"][:2], 0.10 * NOTIONAL)  # type: ignore[attr-defined]


def test_the_short_call_is_repriced_along_the_history_by_hand(dirty: object) -> None:
    """Day 280's window: BTC x 0.92 then x 0.92, two days of the call's 30 pass; the short 3 calls gain.
    Day 290's: x 0.88 then x 1.14 (the worst point for a short call is the end, up 0.32%)."""
    run = dirty
    col = {d: int(np.flatnonzero(run.dates == DAY[d])[0]) for d in (280, 290)}  # type: ignore[attr-defined]
    year = 365.0
    start = _black76_call(1e5, 110000, 30 / year, 0.6)
    for day, path in ((280, (0.92, 0.92**2)), (290, (0.88, 0.88 * 1.14))):
        values = [_black76_call(1e5 * r, 110000, (30 - s) / year, 0.6) for s, r in enumerate(path, start=1)]
        losses = [3 * (v - start) for v in values]  # short 3 calls: a loss when the call gains value
        assert run.loss[2, col[day]] == pytest.approx(losses[-1], rel=1e-9)  # type: ignore[attr-defined]
        assert run.path_loss[2, col[day]] == pytest.approx(max(losses), rel=1e-9)  # type: ignore[attr-defined]


def test_accounts_on_assets_the_history_lacks_are_not_tested(dirty: object) -> None:
    run = dirty
    summary = run.summary()  # type: ignore[attr-defined]
    assert run.accounts == ("long", "short", "call", "eth", "idle")  # type: ignore[attr-defined]
    assert run.tested_accounts.tolist() == [0, 1, 2]  # type: ignore[attr-defined]  # eth: no ETH; idle: no positions
    assert summary["accounts_with_positions"] == 3
    assert set(run.results["static"]) == {"long", "short", "call"}  # type: ignore[attr-defined]
    static = summary["models"]["static"]
    hits = run.exceptions("static")[:3, run.dates.searchsorted(DAY[270:304:2])]  # type: ignore[attr-defined]
    assert static["exceptions"] == int(hits.sum()) and static["observations"] == hits.size


def test_cli_runs_the_dirty_backtest_beside_the_clean_one(tmp_path: Path) -> None:
    write_history(HAND, tmp_path / "history.csv")
    (tmp_path / "portfolio.json").write_text(json.dumps(BOOK))
    (tmp_path / "market.json").write_text(json.dumps(MARKET))
    out = tmp_path / "out"
    args = ["backtest", "--history", str(tmp_path / "history.csv"), "--models", "static", "--out", str(out)]
    args += ["--portfolio", str(tmp_path / "portfolio.json"), "--market", str(tmp_path / "market.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    portfolio = json.loads((out / "portfolio.json").read_text())
    assert portfolio["schema"] == "solvent.portfolio-backtest/1" and portfolio["accounts_with_positions"] == 3
    rows = pcsv.read_csv(out / "portfolio_dates.csv").num_rows
    assert rows == portfolio["observations"]  # one model
    assert (out / "summary.json").exists() and (out / "dates.csv").exists()


def test_cli_portfolio_needs_its_market(tmp_path: Path) -> None:
    write_history(HAND, tmp_path / "history.csv")
    args = ["backtest", "--history", str(tmp_path / "history.csv"), "--portfolio", "p.json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "needs both" in result.output


def test_cli_market_without_a_traded_asset_exits_2(tmp_path: Path) -> None:
    write_history(HAND, tmp_path / "history.csv")
    (tmp_path / "portfolio.json").write_text(json.dumps(BOOK))
    market = {**MARKET, "assets": {"ETH": MARKET["assets"]["ETH"], "USDC": MARKET["assets"]["USDC"]}}  # type: ignore[index]
    (tmp_path / "market.json").write_text(json.dumps(market))
    args = ["backtest", "--history", str(tmp_path / "history.csv"), "--models", "static"]
    args += ["--portfolio", str(tmp_path / "portfolio.json"), "--market", str(tmp_path / "market.json")]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'market.json'}: assets.BTC" in result.output
