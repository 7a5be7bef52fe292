"""VPIN with bulk volume classification (solvent.market.toxicity) against a hand-worked bucket example, the
definition of Easley, Lopez de Prado and O'Hara (2012, RFS 25(5), eq. (5): VPIN = sum |V^S - V^B| / (n V) over
the last n buckets; bulk classification V^B = V Z(dP / sigma)) and a unit-by-unit twin of the bucket fill."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.stats import norm

from solvent.market.toxicity import (
    bulk_buy_fraction,
    causal_sigma,
    volume_buckets,
    vpin,
    vpin_by_bar,
    vpin_by_bucket,
)


def _bucket_volumes_slow(volume: list[int], buy_fraction: list[float], size: int) -> list[tuple[float, float, int]]:
    """The obvious fill: one unit of volume at a time, each unit bought in its bar's share; (buy, sell, end bar)."""
    buckets, buy, filled = [], 0.0, 0
    for bar, (v, share) in enumerate(zip(volume, buy_fraction, strict=True)):
        for _ in range(v):
            buy += share
            filled += 1
            if filled == size:
                buckets.append((buy, size - buy, bar))
                buy, filled = 0.0, 0
    return buckets


# Hand-worked (docs/model.md, "Order-flow toxicity"): bars of 4, 6, 5, 5 units with buy shares 0.75, 0.5, 0.2,
# 1.0 into buckets of 5. Bucket 0: 4 x 0.75 + 1 x 0.5 = 3.5 bought, 1.5 sold (|S - B| = 2); bucket 1: the other
# 5 units of bar 1, 2.5 and 2.5 (0); bucket 2: bar 2, 1 and 4 (3); bucket 3: bar 3, 5 and 0 (5). With n = 2:
# VPIN = (2 + 0) / 10 = 0.2 after bucket 1, (0 + 3) / 10 = 0.3 after bucket 2, (3 + 5) / 10 = 0.8 after bucket 3.
HAND_VOLUME = np.array([4.0, 6.0, 5.0, 5.0])
HAND_SHARE = np.array([0.75, 0.5, 0.2, 1.0])


def test_hand_worked_buckets() -> None:
    buckets = volume_buckets(HAND_VOLUME, HAND_SHARE, 5.0)
    np.testing.assert_allclose(buckets.buy, [3.5, 2.5, 1.0, 5.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(buckets.sell, [1.5, 2.5, 4.0, 0.0], rtol=0, atol=1e-12)
    assert buckets.end_bar.tolist() == [1, 1, 2, 3]


def test_hand_worked_vpin() -> None:
    buckets = volume_buckets(HAND_VOLUME, HAND_SHARE, 5.0)
    np.testing.assert_allclose(vpin_by_bucket(buckets, 2), [math.nan, 0.2, 0.3, 0.8], rtol=0, atol=1e-12)
    np.testing.assert_allclose(vpin_by_bar(buckets, 4, 2), [math.nan, 0.2, 0.3, 0.8], rtol=0, atol=1e-12)


def test_partial_last_bucket_is_left_out() -> None:
    buckets = volume_buckets(np.array([4.0, 6.0, 5.0, 3.0]), HAND_SHARE, 5.0)
    assert buckets.buy.size == 3


@pytest.mark.parametrize(
    ("z", "share"), [(0.0, 0.5), (0.6744897501960817, 0.75), (-1.0, norm.cdf(-1.0)), (3.0, norm.cdf(3.0))]
)
def test_bulk_classification_is_the_normal_cdf_of_the_standardised_change(z: float, share: float) -> None:
    """BVC: V^B = V Z(dP / sigma) (Easley, Lopez de Prado and O'Hara 2012); scipy's normal CDF as the oracle."""
    assert bulk_buy_fraction(np.array([z * 0.02]), 0.02)[0] == pytest.approx(share, rel=1e-12)


def test_unknown_change_or_sigma_is_balanced() -> None:
    assert bulk_buy_fraction(np.array([math.nan, 0.01]), np.array([0.01, math.nan])).tolist() == [0.5, 0.5]


def test_one_bar_per_bucket_gives_the_mean_absolute_imbalance() -> None:
    """With each bar exactly one bucket, eq. (5) is the mean of |1 - 2 Z(dP / sigma)| over the last n bars."""
    rng = np.random.default_rng(3)
    share = bulk_buy_fraction(rng.normal(size=200), 1.0)
    buckets = volume_buckets(np.full(200, 7.0), share, 7.0)
    expected = np.convolve(np.abs(1.0 - 2.0 * share), np.ones(50) / 50, mode="valid")
    np.testing.assert_allclose(vpin_by_bucket(buckets, 50)[49:], expected, rtol=1e-12)


def test_one_sided_flow_is_one_and_balanced_flow_is_zero() -> None:
    assert vpin_by_bucket(volume_buckets(np.full(10, 3.0), np.ones(10), 2.0), 3)[-1] == pytest.approx(1.0)
    assert vpin_by_bucket(volume_buckets(np.full(10, 3.0), np.full(10, 0.5), 2.0), 3)[-1] == pytest.approx(0.0)


@settings(max_examples=200, deadline=None)
@given(
    bars=st.lists(st.tuples(st.integers(0, 12), st.floats(0.0, 1.0)), min_size=1, max_size=40),
    size=st.integers(1, 9),
)
def test_bucket_fill_matches_the_unit_by_unit_twin(bars: list[tuple[int, float]], size: int) -> None:
    volume, share = [b[0] for b in bars], [b[1] for b in bars]
    slow = _bucket_volumes_slow(volume, share, size)
    fast = volume_buckets(np.array(volume, dtype=float), np.array(share), float(size))
    assert fast.buy.size == len(slow)
    np.testing.assert_allclose(fast.buy, [b[0] for b in slow], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.sell, [b[1] for b in slow], rtol=0, atol=1e-9)
    assert fast.end_bar.tolist() == [b[2] for b in slow]


@settings(max_examples=100, deadline=None)
@given(
    bars=st.lists(st.tuples(st.floats(0.0, 50.0), st.floats(0.0, 1.0)), min_size=1, max_size=60),
    window=st.integers(1, 5),
)
def test_vpin_lies_in_the_unit_interval(bars: list[tuple[float, float]], window: int) -> None:
    buckets = volume_buckets(np.array([b[0] for b in bars]), np.array([b[1] for b in bars]), 4.0)
    values = vpin_by_bucket(buckets, window)
    finite = values[np.isfinite(values)]
    assert ((finite >= -1e-12) & (finite <= 1.0 + 1e-12)).all()


def _walk(n: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n))), rng.uniform(1.0, 10.0, n)


def test_vpin_is_causal() -> None:
    """A bar's VPIN uses nothing after it: the series of a prefix is the prefix of the series."""
    price, volume = _walk(400, 5)
    full = vpin(price, volume, 20.0, window=10, sigma_window=50)
    part = vpin(price[:250], volume[:250], 20.0, window=10, sigma_window=50)
    np.testing.assert_array_equal(full[:250], part)


def test_causal_sigma_uses_the_window_before_each_bar() -> None:
    change = np.array([math.nan, 0.01, -0.02, 0.03, 0.0, 0.05])
    sigma = causal_sigma(change, 3)
    assert np.isnan(sigma[:3]).all()
    assert sigma[3] == pytest.approx(np.std([0.01, -0.02], ddof=1))
    assert sigma[5] == pytest.approx(np.std([-0.02, 0.03, 0.0], ddof=1))


def test_bad_bucket_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        volume_buckets(HAND_VOLUME, HAND_SHARE, 0.0)
