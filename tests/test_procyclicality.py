"""Procyclicality measures of a margin series (lab/procyclicality.py).

Measures after Murphy, Vasios and Vause, Bank of England Financial Stability Paper 29 (2014)
(shared/REFERENCES.md): peak-to-trough ratio, largest n-day increase, cost of an anti-procyclicality tool.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from solvent.lab.procyclicality import (
    HORIZONS,
    apc_cost,
    max_absolute_increase,
    max_increase,
    peak_to_trough,
    procyclicality,
)

#: A small margin series, by hand: peak 200 (day 3), trough 80 (day 5).
M = np.array([100.0, 110.0, 150.0, 200.0, 120.0, 80.0, 100.0])


def test_peak_to_trough_by_hand() -> None:
    assert peak_to_trough(M) == pytest.approx(200.0 / 80.0)


@pytest.mark.parametrize(
    ("n", "relative", "absolute"),
    [
        # 1-day steps: +10 (10%), +40 (36.4%), +50 (33.3%), -80, -40, +20 (25%) -> max 40/110 relative, 50 absolute
        (1, 40.0 / 110.0, 50.0),
        # 2-day steps: 150-100 = 50 (50%), 200-110 = 90 (81.8%), 120-150, 80-200, 100-120
        (2, 90.0 / 110.0, 90.0),
        # 3-day steps: 200-100 = 100 (100%), 120-110 = 10, 80-150, 100-200
        (3, 1.0, 100.0),
        # 6-day step: 100-100 = 0
        (6, 0.0, 0.0),
    ],
)
def test_max_increase_by_hand(n: int, relative: float, absolute: float) -> None:
    assert max_increase(M, n) == pytest.approx(relative, rel=1e-12)
    assert max_absolute_increase(M, n) == pytest.approx(absolute, rel=1e-12)


def test_relative_and_absolute_maxima_can_differ_in_time() -> None:
    """The largest 1-day rise in percent (110 -> 150) is not the largest in dollars (150 -> 200)."""
    steps = np.diff(M)
    assert int(np.argmax(steps / M[:-1])) != int(np.argmax(steps))


def test_falling_margin_has_negative_increase() -> None:
    """A margin that only falls: the largest 1-day 'increase' is the smallest fall, -10%."""
    assert max_increase([100.0, 90.0, 45.0], 1) == pytest.approx(-0.1)
    assert max_absolute_increase([100.0, 90.0, 45.0], 1) == pytest.approx(-10.0)


def test_apc_cost_by_hand() -> None:
    """A 25% buffer on half the days: mean 112.5 against 100, cost 12.5%."""
    without = np.full(4, 100.0)
    with_tool = np.array([125.0, 125.0, 100.0, 100.0])
    assert apc_cost(with_tool, without) == pytest.approx(0.125)


def test_procyclicality_bundle_by_hand() -> None:
    floor = np.maximum(M, 120.0)  # a margin floor, the kind of tool EMIR Art. 28 allows
    result = procyclicality(floor, horizons=(1, 3), without_tool=M)
    assert result.observations == 7
    assert (result.peak, result.trough) == (200.0, 120.0)
    assert result.peak_to_trough == pytest.approx(200.0 / 120.0)
    assert result.max_increase == pytest.approx((50.0 / 150.0, 80.0 / 120.0))
    assert result.max_absolute_increase == pytest.approx((50.0, 80.0))
    assert result.apc_cost == pytest.approx(floor.mean() / M.mean() - 1.0)
    assert floor.mean() / M.mean() - 1.0 == pytest.approx((950.0 - 860.0) / 860.0)


def test_procyclicality_default_horizons_and_json() -> None:
    margin = 100.0 + np.arange(40.0)  # rises by 1 a day
    result = procyclicality(margin)
    assert result.horizons == HORIZONS == (1, 5, 30)
    assert result.max_absolute_increase == pytest.approx((1.0, 5.0, 30.0))
    assert result.max_increase == pytest.approx((1.0 / 100.0, 5.0 / 100.0, 30.0 / 100.0))
    assert result.apc_cost is None
    record = json.loads(json.dumps(result.to_dict()))
    assert record["max_increase"]["30"] == pytest.approx(0.3)
    assert record["apc_cost"] is None


@pytest.mark.parametrize(
    ("margin", "match"),
    [
        ([100.0, 0.0], r"margin\[1\].*0.0"),
        ([100.0, -5.0], r"margin\[1\].*-5.0"),
        ([np.nan, 1.0], r"margin\[0\].*nan"),
        ([], "non-empty"),
        ([[1.0, 2.0]], "shape"),
    ],
)
def test_bad_margins_refused(margin: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        peak_to_trough(margin)


@pytest.mark.parametrize("n", [0, 7, 30])
def test_horizon_must_fit(n: int) -> None:
    with pytest.raises(ValueError, match="horizon"):
        max_increase(M, n)


def test_default_horizons_need_31_days() -> None:
    with pytest.raises(ValueError, match="horizon"):
        procyclicality(M)


def test_apc_cost_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="shape"):
        apc_cost([1.0, 2.0], [1.0])


def test_inputs_not_mutated() -> None:
    margin = M.copy()
    procyclicality(margin, horizons=(1, 2), without_tool=margin * 0.9)
    assert np.array_equal(margin, M)


MARGINS = st.lists(st.floats(1.0, 1e9), min_size=2, max_size=100)


@given(MARGINS, st.floats(1e-3, 1e3))
def test_invariant_to_scale(values: list[float], factor: float) -> None:
    """Ratios do not move when the series is scaled; absolute increases scale with it."""
    margin = np.array(values)
    base = procyclicality(margin, horizons=(1,), without_tool=margin[::-1])
    scaled = procyclicality(factor * margin, horizons=(1,), without_tool=factor * margin[::-1])
    assert scaled.peak_to_trough == pytest.approx(base.peak_to_trough, rel=1e-12)
    assert scaled.max_increase == pytest.approx(base.max_increase, rel=1e-9, abs=1e-12)
    assert scaled.max_absolute_increase == pytest.approx(
        tuple(factor * v for v in base.max_absolute_increase), rel=1e-9, abs=1e-12 * factor * margin.max()
    )
    assert scaled.apc_cost == pytest.approx(base.apc_cost, rel=1e-9, abs=1e-12)


@given(MARGINS)
def test_peak_to_trough_at_least_one(values: list[float]) -> None:
    assert peak_to_trough(values) >= 1.0
