"""External signals (solvent.governance.signals), the bounded path a signal can drive (governance.bounds), and
the toxicity backtest (solvent.lab.toxicity_backtest) on a synthetic hourly history and on ../shared's BTC."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.errors import InputError
from solvent.governance.bounds import Bound, bounded_path
from solvent.governance.signals import read_signal, signal_scale
from solvent.lab.margin_backtest import run_backtest
from solvent.lab.toxicity_backtest import daily_closes, toxicity_backtest
from solvent.market.history import PriceHistory, read_hourly_volume
from solvent.params import MarginParams


def _ranks_slow(values: list[float]) -> list[float]:
    return [sum(v <= values[t] for v in values[: t + 1]) / (t + 1) for t in range(len(values))]


def test_scale_by_hand() -> None:
    """Values 1..10 rising, q = 0.5, max 3, no minimum history: each new value is the largest so far (F = 1), so
    m = 1 + 2 x (1 - 0.5) / 0.5 = 3; a value at the median of its past gives 1."""
    rising = signal_scale(np.arange(1.0, 11.0), quantile=0.5, max_scale=3.0, min_history=1)
    assert rising.tolist() == [3.0] * 10
    # 4 values then 2.5: F = #{1, 2, 2.5} / 5 = 0.6 -> 1 + 2 x 0.1 / 0.5 = 1.4
    last = signal_scale(np.array([1.0, 2.0, 3.0, 4.0, 2.5]), quantile=0.5, max_scale=3.0, min_history=1)[-1]
    assert last == pytest.approx(1.4)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50))
def test_scale_is_the_causal_empirical_cdf(values: list[float]) -> None:
    q, top = 0.8, 2.0
    expected = [1.0 + (top - 1.0) * max(0.0, f - q) / (1.0 - q) for f in _ranks_slow(values)]
    np.testing.assert_allclose(signal_scale(np.array(values), q, top, min_history=1), expected, rtol=1e-12)


def test_scale_needs_a_history() -> None:
    assert signal_scale(np.arange(29.0)).tolist() == [1.0] * 29
    assert signal_scale(np.arange(30.0))[-1] == pytest.approx(2.0)


def test_read_signal(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n2020-01-01T00:00:00Z,0.5\n2020-01-02T00:00:00,-1.25\n")
    series = read_signal(path)
    assert series.values.tolist() == [0.5, -1.25]
    assert series.at(datetime(2020, 1, 1, 12, tzinfo=UTC)) == 0
    assert series.at(datetime(2019, 12, 31, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,value\n", "header: expected timestamp,value"),
        ("timestamp,value\n2020-01-01,abc\n", "row 1.value: not a finite number: 'abc'"),
        ("timestamp,value\n2020-13-01,1\n", "row 1.timestamp: not an ISO-8601 time"),
        ("timestamp,value\n2020-01-02,1\n2020-01-01,2\n", "row 2.timestamp: 2020-01-01 is not after"),
        ("timestamp,value\n", "no observations"),
    ],
)
def test_read_signal_names_the_bad_row(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_signal(path)


def test_bounded_path_moves_one_step_per_delay() -> None:
    """Target 2 from 1 with a 25% relative step every 3 observations: 1.25 at t = 0, 1.5625 at t = 3, 1.953125 at
    t = 6, 2 at t = 9 (the cap), holding in between."""
    path = bounded_path(np.full(10, 2.0), 1.0, Bound("relative", 0.25, 1.0, 2.0), 3)
    np.testing.assert_allclose(path, [1.25] * 3 + [1.5625] * 3 + [1.953125] * 3 + [2.0])


def _hourly(days: int, seed: int) -> tuple[PriceHistory, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 24 * days
    stamps = np.datetime64("2020-01-01T00:00:00", "s") + np.arange(n) * np.timedelta64(3600, "s")
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    return PriceHistory(stamps, ("BTC",), closes[:, None]), rng.uniform(10.0, 100.0, n)


def test_daily_closes_take_each_days_last_hour() -> None:
    history, volume = _hourly(3, 1)
    daily, rows = daily_closes(history, volume)
    assert rows.tolist() == [23, 47, 71]
    assert daily.closes[:, 0].tolist() == history.closes[[23, 47, 71], 0].tolist()


def test_toxicity_backtest_plain_run_is_the_margin_backtest() -> None:
    """The plain run is `run_backtest` on the daily closes; the scaled run charges m_t times the fast vol, so never
    less; the bounded multiplier moves at most 25% every 3 days, within [1, 2]."""
    history, volume = _hourly(340, 2)
    params = MarginParams()
    result = toxicity_backtest(history, volume, params, ["vol_only"])
    direct = run_backtest(daily_closes(history, volume)[0], ["vol_only"], params)
    np.testing.assert_array_equal(result.plain.requirement["vol_only"], direct.requirement["vol_only"])
    assert (result.multiplier > 1.0).any()
    assert (result.scaled.requirement["vol_only"] >= result.plain.requirement["vol_only"]).all()
    assert (result.scaled.requirement["vol_only"] > result.plain.requirement["vol_only"]).any()
    steps = np.diff(result.bounded_multiplier)
    assert (steps[np.arange(1, steps.size + 1) % 3 != 0] == 0.0).all()  # it moves only every 3 days
    assert (np.abs(steps) <= 0.25 * result.bounded_multiplier[:-1] + 1e-12).all()
    assert ((result.bounded_multiplier >= 1.0) & (result.bounded_multiplier <= 2.0)).all()
    summary = result.summary()
    assert summary["plain"]["vol_only long BTC"]["observations"] == direct.results["vol_only"]["long BTC"].observations


def test_vol_scale_of_one_changes_nothing() -> None:
    history, volume = _hourly(320, 3)
    daily = daily_closes(history, volume)[0]
    plain = run_backtest(daily, ["vol_only"], MarginParams())
    ones = run_backtest(daily, ["vol_only"], MarginParams(), vol_scale=np.ones(daily.timestamps.size))
    np.testing.assert_array_equal(plain.requirement["vol_only"], ones.requirement["vol_only"])


def test_hourly_volume_of_the_shared_btc_file(shared_dir: Path) -> None:
    history, volume = read_hourly_volume(shared_dir / "data" / "prices" / "coinbase_btcusd_hourly_2017_2019.csv")
    assert volume.shape == (history.timestamps.size,)
    assert history.timestamps[0] == np.datetime64("2017-07-01T11:00:00")
    assert volume[0] == pytest.approx(114.6)  # the file's oldest row, 2017-07-01 11-AM: volume_btc 114.6
    assert math.isfinite(volume.sum()) and (volume >= 0.0).all()
