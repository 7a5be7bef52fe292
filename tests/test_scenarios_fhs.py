"""Filtered historical simulation against hand-built histories, a slow twin and real prices."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from msgspec import structs

from solvent.errors import InputError
from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot
from solvent.market.history import PriceHistory
from solvent.market.state import MarketState, build_market_state
from solvent.params import FhsParams, MarginParams
from solvent.scenarios import generate_scenarios
from solvent.scenarios.fhs import filtered_historical

NOW = datetime(2026, 1, 2, tzinfo=UTC)
DAY = np.timedelta64(1, "D")


def fhs_params(mpor_days: float = 2.0, **fhs: object) -> MarginParams:
    params = structs.replace(MarginParams(), mpor_days=mpor_days)
    scenarios = structs.replace(params.scenarios, method="fhs", fhs=structs.replace(FhsParams(), **fhs))
    return structs.replace(params, scenarios=scenarios)


def market(vols: dict[str, float], params: MarginParams, collateral_only: tuple[str, ...] = ()) -> MarketState:
    instruments = [Instrument(id=f"{a}-PERP", kind="perp", underlying=a) for a in vols]
    quotes = {a: AssetQuote(price=100.0, vol=v) for a, v in vols.items()}
    quotes.update({a: AssetQuote(price=1.0, vol=0.05) for a in collateral_only})
    snapshot = MarketSnapshot(schema="solvent.market/1", time=NOW, assets=quotes)
    return build_market_state(instruments, snapshot, params)


def history_from_returns(
    returns: dict[str, np.ndarray], step: np.timedelta64 = DAY, start: str = "2019-01-01"
) -> PriceHistory:
    names = tuple(returns)
    log_closes = np.vstack([np.zeros(len(names)), np.cumsum(np.column_stack(list(returns.values())), axis=0)])
    timestamps = (np.datetime64(start) + step * np.arange(log_closes.shape[0])).astype("datetime64[s]")
    return PriceHistory(timestamps, names, 100.0 * np.exp(log_closes))


def garch_like_returns(seed: int, n: int, n_assets: int = 2) -> np.ndarray:
    """Joint returns whose volatility changes over time (a regime switch halfway)."""
    rng = np.random.default_rng(seed)
    scale = np.where(np.arange(n) < n // 2, 0.02, 0.05)[:, np.newaxis]
    return rng.standard_normal((n, n_assets)) * scale


def slow_fhs(
    returns: np.ndarray, today: np.ndarray, lam: float, k: int, lookback: int
) -> tuple[np.ndarray, np.ndarray]:
    """The FHS recipe written out with loops: (log moves, vol moves) of the filtered windows."""
    n, m = returns.shape
    sigma2 = np.empty((n + 1, m))
    weights = lam ** np.arange(min(75, n))
    sigma2[0] = (weights[:, np.newaxis] * returns[: weights.size] ** 2).sum(axis=0) / weights.sum()
    for t in range(1, n + 1):
        sigma2[t] = lam * sigma2[t - 1] + (1 - lam) * returns[t - 1] ** 2
    sigma = np.sqrt(sigma2)
    sigma = np.maximum(sigma, 0.1 * np.median(sigma, axis=0))
    logs, vols = [], []
    for start in range(n - min(n, lookback), n - k + 1):
        logs.append(sum(returns[start + i] / sigma[start + i] * today for i in range(k)))
        vols.append(np.maximum(sigma[start + k] / sigma[start] - 1.0, -0.9))
    return np.array(logs), np.array(vols)


@pytest.mark.parametrize(("mpor_days", "lookback"), [(1.0, 50), (2.0, 300), (5.0, 120), (2.0, 1000)])
def test_matches_slow_twin(mpor_days: float, lookback: int) -> None:
    returns = garch_like_returns(1, 400)
    params = fhs_params(mpor_days, lookback_days=lookback)
    state = market({"BTC": 0.6, "ETH": 0.9}, params, collateral_only=("USDC",))
    scenarios = filtered_historical(state, params, history_from_returns({"BTC": returns[:, 0], "ETH": returns[:, 1]}))
    today = np.array([0.6, 0.9]) * math.sqrt(1.0 / 365.0)
    logs, vols = slow_fhs(returns, today, 0.94, round(mpor_days), lookback)
    cols = [state.asset_index["BTC"], state.asset_index["ETH"]]
    np.testing.assert_allclose(np.log1p(scenarios.price_move[:, cols]), logs, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(scenarios.vol_move[:, cols], vols, rtol=1e-10, atol=1e-14)
    others = [state.asset_index["USD"], state.asset_index["USDC"]]
    assert not scenarios.price_move[:, others].any() and not scenarios.vol_move[:, others].any()
    assert scenarios.group.tolist() == [0] * scenarios.n_scenarios
    assert scenarios.pnl_weight.tolist() == [1.0] * scenarios.n_scenarios


def test_constant_vol_history_is_raw_scaled_by_vol_ratio() -> None:
    # |r| = 2% every day: the EWMA vol is 2% throughout, so filtering only rescales by today / 2%.
    rng = np.random.default_rng(3)
    raw = 0.02 * rng.choice([-1.0, 1.0], size=200)
    params = fhs_params(2.0, lookback_days=100)
    vol = 0.03 * math.sqrt(365.0)  # 3% a day
    scenarios = filtered_historical(market({"BTC": vol}, params), params, history_from_returns({"BTC": raw}))
    expected = 1.5 * (raw[100:-1] + raw[101:])
    np.testing.assert_allclose(np.log1p(scenarios.price_move[:, 0]), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(scenarios.vol_move[:, 0], 0.0, atol=1e-12)


@pytest.mark.parametrize("factor", [0.5, 2.0, 3.0])
def test_log_moves_scale_with_todays_vol(factor: float) -> None:
    history = history_from_returns({"BTC": garch_like_returns(5, 300, 1)[:, 0]})
    params = fhs_params()
    base = filtered_historical(market({"BTC": 0.5}, params), params, history)
    scaled = filtered_historical(market({"BTC": 0.5 * factor}, params), params, history)
    np.testing.assert_allclose(np.log1p(scaled.price_move), factor * np.log1p(base.price_move), rtol=1e-12, atol=1e-15)
    assert np.array_equal(scaled.vol_move, base.vol_move)


def test_lookback_and_labels() -> None:
    history = history_from_returns({"BTC": garch_like_returns(2, 100, 1)[:, 0]}, start="2019-06-01")
    params = fhs_params(2.0, lookback_days=30)
    scenarios = filtered_historical(market({"BTC": 0.5}, params), params, history)
    assert scenarios.n_scenarios == 29  # 30 returns, overlapping 2-day windows
    # The 100 returns close 2019-06-02 .. 2019-09-09; the lookback's first return closes 30 days before.
    assert scenarios.labels[0] == "fhs 2019-08-11"
    assert scenarios.labels[-1] == "fhs 2019-09-08"
    assert scenarios.horizon_years == pytest.approx(2.0 / 365.0)


def test_hourly_history_uses_hourly_windows_and_vols() -> None:
    hour = np.timedelta64(1, "h")
    raw = 0.01 * np.random.default_rng(4).choice([-1.0, 1.0], size=24 * 20)
    params = fhs_params(1.0, lookback_days=10)
    vol = 0.02 * math.sqrt(24 * 365.0)  # 2% an hour
    scenarios = filtered_historical(market({"BTC": vol}, params), params, history_from_returns({"BTC": raw}, hour))
    assert scenarios.n_scenarios == 240 - 24 + 1
    windows = np.lib.stride_tricks.sliding_window_view(raw[-240:], 24).sum(axis=1)
    np.testing.assert_allclose(np.log1p(scenarios.price_move[:, 0]), 2.0 * windows, rtol=1e-12, atol=1e-14)
    assert scenarios.labels[0] == "fhs 2019-01-11T01:00"


def test_rows_with_a_missing_price_are_dropped() -> None:
    returns = garch_like_returns(6, 200)
    history = history_from_returns({"BTC": returns[:, 0], "ETH": returns[:, 1]})
    closes = history.closes.copy()
    closes[:51, 1] = np.nan  # ETH listed later: its first return closes on row 52
    late = PriceHistory(history.timestamps, history.assets, closes)
    params = fhs_params(2.0, lookback_days=1000)
    scenarios = filtered_historical(market({"BTC": 0.6, "ETH": 0.8}, params), params, late)
    assert scenarios.n_scenarios == 200 - 51 - 1
    assert np.all(np.isfinite(scenarios.price_move))


def test_missing_asset_names_it() -> None:
    history = history_from_returns({"BTC": garch_like_returns(7, 50, 1)[:, 0]})
    params = fhs_params()
    with pytest.raises(InputError, match="'SOL'"):
        filtered_historical(market({"BTC": 0.6, "SOL": 1.0}, params), params, history)


def test_stressed_windows_are_raw_and_appended() -> None:
    raw = garch_like_returns(8, 200, 1)[:, 0]
    history = history_from_returns({"BTC": raw})
    params = fhs_params(2.0, lookback_days=50, stressed_start="2019-02-01", stressed_end="2019-02-10")
    scenarios = filtered_historical(market({"BTC": 0.6}, params), params, history)
    plain_params = fhs_params(2.0, lookback_days=50)
    plain = filtered_historical(market({"BTC": 0.6}, plain_params), plain_params, history)
    # Returns closing 2019-02-01 .. 2019-02-10 are raw[30:40]: 9 two-day windows.
    assert scenarios.n_scenarios == plain.n_scenarios + 9
    np.testing.assert_array_equal(scenarios.price_move[: plain.n_scenarios], plain.price_move)
    stressed = scenarios.price_move[plain.n_scenarios :, 0]
    np.testing.assert_allclose(np.log1p(stressed), raw[30:39] + raw[31:40], rtol=1e-12)
    assert scenarios.labels[plain.n_scenarios] == "stressed 2019-02-01"
    assert scenarios.labels[-1] == "stressed 2019-02-09"


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        ("2019-02-01", None, "stressed_end"),
        (None, "2019-02-01", "stressed_start"),
        ("1 Feb 2019", "2019-02-10", "not an ISO date"),
        ("2030-01-01", "2030-02-01", "no 2-return window"),
    ],
)
def test_bad_stressed_period(start: str | None, end: str | None, match: str) -> None:
    history = history_from_returns({"BTC": garch_like_returns(9, 100, 1)[:, 0]})
    params = fhs_params(stressed_start=start, stressed_end=end)
    with pytest.raises(InputError, match=match):
        filtered_historical(market({"BTC": 0.6}, params), params, history)


def test_stressed_end_with_time_and_zone() -> None:
    history = history_from_returns({"BTC": garch_like_returns(10, 100, 1)[:, 0]})
    params = fhs_params(stressed_start="2019-02-01T00:00:00Z", stressed_end="2019-02-05T00:00:00+00:00")
    scenarios = filtered_historical(market({"BTC": 0.6}, params), params, history)
    assert [lab for lab in scenarios.labels if lab.startswith("stressed")] == [
        "stressed 2019-02-01",
        "stressed 2019-02-02",
        "stressed 2019-02-03",
        "stressed 2019-02-04",
    ]


def test_fhs_without_history_is_an_input_error() -> None:
    params = fhs_params()
    with pytest.raises(InputError, match=r"fhs needs a price history \(--history\)"):
        generate_scenarios(market({"BTC": 0.6}, params), params)


def test_deterministic_and_inputs_not_mutated() -> None:
    history = history_from_returns({"BTC": garch_like_returns(11, 100, 1)[:, 0]})
    closes = history.closes.copy()
    params = fhs_params()
    state = market({"BTC": 0.6}, params)
    first, second = (generate_scenarios(state, params, history) for _ in range(2))
    assert np.array_equal(first.price_move, second.price_move) and first.labels == second.labels
    assert np.array_equal(history.closes, closes)


def load_bitstamp(shared: Path) -> PriceHistory:
    import pandas as pd

    frame = pd.read_csv(shared / "data/prices/bitstamp_btc_eth_ltc_daily_2014_2020.csv", index_col=0)
    timestamps = pd.to_datetime(frame.index).to_numpy().astype("datetime64[s]")
    closes = frame[["BTC:close", "ETH:close"]].to_numpy(dtype=np.float64)
    return PriceHistory(timestamps, ("BTC", "ETH"), closes)


def test_real_btc_eth_history(shared_dir: Path) -> None:
    history = load_bitstamp(shared_dir)
    params = fhs_params(2.0, lookback_days=1000, stressed_start="2018-01-15", stressed_end="2018-02-06")
    state = market({"BTC": 0.6, "ETH": 0.8}, params)
    scenarios = filtered_historical(state, params, history)
    filtered = [i for i, lab in enumerate(scenarios.labels) if lab.startswith("fhs")]
    # ETH closes start 2017-11-09: 788 joint closes, 787 returns (< the 1000-day lookback), 786 windows.
    assert len(filtered) == 786
    assert scenarios.labels[filtered[-1]] == "fhs 2020-01-16"  # the last window: closes of 15 -> 17 Jan
    logs = np.log1p(scenarios.price_move[filtered][:, [state.asset_index["BTC"], state.asset_index["ETH"]]])
    # Filtered moves have roughly today's 2-day vol (EWMA filtering is not exact: within 30%).
    target = np.array([0.6, 0.8]) * math.sqrt(2.0 / 365.0)
    np.testing.assert_allclose(logs.std(axis=0), target, rtol=0.3)
    # BTC and ETH move together.
    assert np.corrcoef(logs, rowvar=False)[0, 1] > 0.5
    stressed = [i for i, lab in enumerate(scenarios.labels) if lab.startswith("stressed")]
    assert len(stressed) == 22
    assert scenarios.price_move[stressed, state.asset_index["BTC"]].min() < -0.15
