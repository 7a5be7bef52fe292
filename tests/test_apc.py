"""The anti-procyclicality buffer as state (issue 12 item 9; solvent/engine/apc.py).

EMIR RTS 153/2013 art. 28(1)(a) (REFERENCES.md): a buffer of at least 25% of the calculated margin, which may be
temporarily exhausted while calculated margin rises significantly. Layers: a path by hand; the band and the
one-step rise as hypothesis properties; the rebuild time; the backtest on the demo history (the command of
docs/model.md "Procyclicality": `solvent crash`, then `solvent backtest --history crash/history.csv --assets
BTC` with `apc_mode` "buffer"), where the fixed x1.25 gave peak-to-trough 4.37, +108% in a day, +184% in 30.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.demo.run import demo_history
from solvent.engine.apc import buffer_path, initial_buffer, update_buffer
from solvent.lab.margin_backtest import run_backtest
from solvent.params import MarginParams, VolatilityParams

STILL = VolatilityParams(apc_mode="buffer", apc_buffer_rebuild_days=1e12)  # no rebuild: the band alone


def test_a_path_by_hand() -> None:
    """issue 12 item 9: M = 100, 100, 120, 130, 90, 100. Fixed buffer: 125, 125, 150, 162.5, 112.5, 125 (+20%
    in the step to 120). With release: 125, 125 (built); 125 at M 120 (drawn, level 4.2%); 130 at M 130
    (exhausted, C follows M); 112.5 at M 90 ((1 + b) M: rebuilt by the fall); 112.5 at M 100 (level 12.5%)."""
    m = np.array([[100.0, 100.0, 120.0, 130.0, 90.0, 100.0]])
    charged, level = buffer_path(m, 1.0, STILL)
    np.testing.assert_allclose(charged[0], [125.0, 125.0, 125.0, 130.0, 112.5, 112.5], rtol=1e-9)
    np.testing.assert_allclose(level[0], [0.25, 0.25, 125 / 120 - 1, 0.0, 0.25, 0.125], rtol=1e-9, atol=1e-12)
    assert float(np.max(np.diff(charged[0]) / charged[0, :-1])) == pytest.approx(0.04, rel=1e-6)  # 125 -> 130


def test_rebuild_takes_the_rebuild_period_at_a_steady_margin() -> None:
    params = VolatilityParams(apc_mode="buffer", apc_buffer_rebuild_days=60.0)
    state = update_buffer(initial_buffer(np.array([100.0]), params), np.array([125.0]), 1.0, params)
    # A 25% rise the next day exhausts the buffer; the step's own rebuild leaves one day's growth.
    assert state.level[0] == pytest.approx(1.25 ** (1 / 60.0) - 1.0, rel=1e-9)
    for day in range(2, 61):
        state = update_buffer(state, np.array([125.0]), 1.0, params)
        assert state.level[0] == pytest.approx(1.25 ** (day / 60.0) - 1.0, rel=1e-9)
    assert state.level[0] == pytest.approx(0.25, rel=1e-12)  # full after the 60-day rebuild period
    assert update_buffer(state, np.array([0.0]), 1.0, params).level[0] == 0.25  # a flat account: the built level
    new = update_buffer(update_buffer(state, np.array([0.0]), 1.0, params), np.array([50.0]), 1.0, params)
    assert new.charged[0] == pytest.approx(62.5)  # a new exposure is charged the built buffer


margins = st.lists(st.floats(1.0, 1e6), min_size=2, max_size=40)


@settings(max_examples=200, deadline=None)
@given(series=margins, rebuild=st.floats(1.0, 400.0), buffer=st.floats(0.0, 1.0), dt=st.floats(0.01, 5.0))
def test_band_and_one_step_rise(series: list[float], rebuild: float, buffer: float, dt: float) -> None:
    """M <= C <= (1 + b) M at every step, and C's one-step rise is never more than M's own (the fixed buffer's)
    or the rebuild rate (1 + b)^(dt / R) - 1, whichever is larger."""
    params = VolatilityParams(apc_mode="buffer", apc_buffer=buffer, apc_buffer_rebuild_days=rebuild)
    m = np.array([series])
    charged, level = buffer_path(m, dt, params)
    assert np.all(charged >= m * (1.0 - 1e-12)) and np.all(charged <= (1.0 + buffer) * m * (1.0 + 1e-12))
    assert np.all((level >= 0.0) & (level <= buffer))
    rate = (1.0 + buffer) ** (dt / rebuild) - 1.0
    rise = charged[0, 1:] / charged[0, :-1] - 1.0
    bound = np.maximum(m[0, 1:] / m[0, :-1] - 1.0, rate)
    assert np.all(rise <= bound + 1e-9)


def test_update_refuses_a_negative_step() -> None:
    params = VolatilityParams(apc_mode="buffer")
    with pytest.raises(ValueError, match="dt_days"):
        update_buffer(initial_buffer(np.array([1.0]), params), np.array([1.0]), -1.0, params)


# ------------------------------------------------------------------------------- backtest


@pytest.fixture(scope="module")
def demo_runs() -> dict[str, object]:
    history = demo_history(7)  # the history `solvent crash` writes (crash/history.csv)
    runs = {}
    for name, release in (("fixed", False), ("release", True)):
        params = MarginParams(volatility=VolatilityParams(apc_mode="buffer", apc_buffer_release=release))
        runs[name] = run_backtest(history, ["multi"], params, assets=("BTC",))
    return runs


def test_the_released_buffer_lowers_peak_to_trough_and_the_largest_rises(demo_runs: dict[str, object]) -> None:
    """issue 12 item 9: on the demo history, the fixed x1.25 has the procyclicality of no tool at all (4.012,
    +100.5% in one day, +166.6% in 30: identical to apc_mode "none"; 4.375, +107.8%, +183.6% before the grid's
    scan became the lognormal ES, item 10); the released buffer lowers all three (3.33, +96.6%, +120.6%) at an
    average cost of 17% instead of 25%."""
    fixed = demo_runs["fixed"].cyclicality["multi"]["long BTC"]  # type: ignore[attr-defined]
    release = demo_runs["release"].cyclicality["multi"]["long BTC"]  # type: ignore[attr-defined]
    assert fixed.peak_to_trough == pytest.approx(4.012, abs=5e-4)
    assert fixed.max_increase[0] == pytest.approx(1.005, abs=5e-4) and fixed.horizons == (1, 5, 30)
    assert fixed.max_increase[2] == pytest.approx(1.666, abs=5e-4)
    assert release.peak_to_trough < fixed.peak_to_trough - 0.5
    assert release.max_increase[0] < fixed.max_increase[0]
    assert release.max_increase[2] < fixed.max_increase[2] - 0.3
    assert fixed.apc_cost == pytest.approx(0.25, rel=1e-9)
    assert release.apc_cost is not None and 0.0 < release.apc_cost < 0.25
    # The charged margin stays inside the buffer's band around the margin without the tool, on every date.
    charged = demo_runs["release"].requirement["multi"]  # type: ignore[attr-defined]
    bare = demo_runs["fixed"].requirement["multi"] / 1.25  # type: ignore[attr-defined]
    assert np.all(charged >= bare * (1 - 1e-12)) and np.all(charged <= 1.25 * bare * (1 + 1e-12))
    assert not math.isclose(float(charged.mean()), float(1.25 * bare.mean()))
    # MM follows the charged IM: on the liquidation horizon (the default maintenance mode, issue 12 item 8) a lone
    # perp without depth closes in 5 slices, 180 s, sqrt(180 s / 2 d) = 3% of its market risk: the floor, half.
    np.testing.assert_allclose(demo_runs["release"].maintenance["multi"], 0.5 * charged, rtol=1e-15)  # type: ignore[attr-defined]
